"""Settings as a file: export, import, validation, and the CLI."""
import json

import pytest

from extensions import db
from models import Channel
from notify import settings_io


def counts(result: dict) -> tuple[int, int, int]:
    return result["created"], result["updated"], result["deleted"]


def test_export_leaves_secrets_out_unless_asked(app, make_webhook):
    make_webhook("https://a.example.com/h", secret="whsec_aaaaaaaaaaaaaaaaaaaa", hooks_=["order_pay_hook"])
    with app.app_context():
        doc = settings_io.export()
        assert doc["format"] == "merchant-notify-settings" and doc["version"] == 1
        (channel,) = doc["channels"]
        assert channel == {"kind": "webhook", "description": "", "enabled": True,
                           "config": {"url": "https://a.example.com/h", "auth_mode": "signature",
                                      "standard_webhooks": False},
                           "hooks": ["order_pay_hook"]}
        assert settings_io.export(include_secrets=True)["channels"][0]["secret"] == "whsec_aaaaaaaaaaaaaaaaaaaa"


def test_round_trip_through_the_cli_into_an_empty_install(app, runner, make_webhook, tmp_path):
    make_webhook("https://a.example.com/h", secret="whsec_aaaaaaaaaaaaaaaaaaaa", hooks_=["order_pay_hook"])
    make_webhook("https://b.example.com/h", secret="plain-password", auth_mode="password", enabled=False)
    path = tmp_path / "settings.json"
    result = runner.invoke(args=["settings", "export", str(path), "--include-secrets"])
    assert result.exit_code == 0, result.output
    exported = json.loads(path.read_text())
    with app.app_context():
        for channel in db.session.scalars(db.select(Channel)):
            db.session.delete(channel)
        db.session.commit()
    result = runner.invoke(args=["settings", "import", str(path)])
    assert result.exit_code == 0 and "2 added, 0 updated, 0 deleted" in result.output
    with app.app_context():
        assert settings_io.export(include_secrets=True) == exported


def test_import_without_secrets_keeps_existing_ones_and_updates_in_place(app, make_webhook):
    make_webhook("https://a.example.com/h", secret="whsec_keep_me_please_123", hooks_=["order_pay_hook"])
    with app.app_context():
        doc = settings_io.export()
        doc["channels"][0]["hooks"] = ["order_create_hook", "order_pay_hook"]
        doc["channels"][0]["description"] = "ERP"
        result = settings_io.import_(json.dumps(doc))
        assert counts(result) == (0, 1, 0)
        assert result["updated_channels"] == [{"kind": "webhook", "target": "https://a.example.com/h", "description": ""}]
        channel = db.session.scalar(db.select(Channel))
        assert channel.secret == "whsec_keep_me_please_123" and channel.description == "ERP"
        assert channel.hooks == ["order_create_hook", "order_pay_hook"]


def test_replace_deletes_channels_missing_from_the_file(app, make_webhook):
    make_webhook("https://a.example.com/h")
    make_webhook("https://b.example.com/h")
    with app.app_context():
        doc = settings_io.export(include_secrets=True)
        doc["channels"] = doc["channels"][:1]
        result = settings_io.import_(json.dumps(doc), replace=True)
        assert counts(result) == (0, 1, 1)
        assert result["deleted_channels"] == [{"kind": "webhook", "target": "https://b.example.com/h", "description": ""}]
        assert [c.target for c in db.session.scalars(db.select(Channel))] == ["https://a.example.com/h"]


@pytest.mark.parametrize("doc, problem", [
    ("{", "not valid JSON"),
    ({"channels": []}, "not a settings file"),
    ({"format": "merchant-notify-settings", "version": 9, "channels": []}, "unsupported version 9"),
    ({"format": "merchant-notify-settings", "version": 1, "channels": {}}, '"channels" must be a list'),
])
def test_malformed_files_are_refused(app, doc, problem):
    with app.app_context(), pytest.raises(settings_io.ImportError_) as info:
        settings_io.import_(doc if isinstance(doc, str) else json.dumps(doc))
    assert problem in str(info.value)


def test_invalid_channels_are_all_listed_and_nothing_changes(app, runner, make_webhook, tmp_path):
    make_webhook("https://keep.example.com/h")
    doc = {"format": "merchant-notify-settings", "version": 1, "channels": [
        {"kind": "webhook", "config": {"url": "https://ok.example.com/h", "auth_mode": "signature"},
         "secret": "whsec_fine_secret", "hooks": ["order_pay_hook"]},
        {"kind": "webhook", "config": {"url": "ftp://x", "auth_mode": "signature"}, "secret": "s",
         "hooks": ["order_pay_hook"]},
        {"kind": "webhook", "config": {"url": "https://new.example.com/h", "auth_mode": "signature"},
         "hooks": ["order_paid"]},
        {"kind": "fax", "config": {}, "hooks": []},
    ]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(args=["settings", "import", str(path), "--replace"])
    assert result.exit_code != 0
    assert "nothing changed" in result.output
    assert "channels[1].url: Only http:// and https://" in result.output
    assert "channels[2].secret:" in result.output and "channels[2].hooks: unknown hooks: order_paid" in result.output
    assert "channels[3].kind: 'fax'" in result.output
    with app.app_context():
        assert [c.target for c in db.session.scalars(db.select(Channel))] == ["https://keep.example.com/h"]


ROBOT_URL = "https://oapi.dingtalk.com/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e5d2c1b0a9f8e"


def test_robot_credentials_are_masked_in_an_export_and_kept_on_its_import(app, make_channel):
    make_channel("dingtalk", {"url": ROBOT_URL, "mentions": {"inventory": {"all": True}}}, secret="SECabcdef0123456789",
                 hooks_=["stock_alarm_hook"])
    make_channel("email", {"recipients": ["owner@example.com"]}, hooks_=["order_pay_hook"])
    with app.app_context():
        doc = settings_io.export()
        text = json.dumps(doc, ensure_ascii=False)
        assert "4f1c2a9e0b7d4c3f8a6e5d2c1b0a9f8e" not in text and "SECabcdef" not in text
        robot = doc["channels"][0]
        assert robot["config"]["url"].endswith("access_token=••••••••9f8e")
        robot["hooks"] = ["stock_alarm_hook", "key_stock_alarm_hook"]
        doc["channels"][1]["config"]["recipients"] = ["owner@example.com"]
        assert counts(settings_io.import_(json.dumps(doc))) == (0, 2, 0)
        channel = db.session.scalar(db.select(Channel).where(Channel.kind == "dingtalk"))
        assert channel.config["url"] == ROBOT_URL and channel.secret == "SECabcdef0123456789"
        assert channel.hooks == ["stock_alarm_hook", "key_stock_alarm_hook"]
        # Into an install that does not have the robot, a masked URL cannot work: it says so.
        db.session.delete(channel)
        db.session.commit()
        with pytest.raises(settings_io.ImportError_) as error:
            settings_io.import_(json.dumps(doc))
        assert "channels[0].url: its access_token is masked" in str(error.value)


def dingtalk_url(token: str) -> str:
    return f"https://oapi.dingtalk.com/robot/send?access_token={token}"


def robots(app) -> dict[str, Channel]:
    with app.app_context():
        return {c.config["url"]: (c.description, list(c.hooks), c.secret)
                for c in db.session.scalars(db.select(Channel).where(Channel.kind != "email"))}


# Two robots whose tokens end in the same 4 characters, and two short tokens (under 12
# characters, masked to nothing but "••••••••").
TWINS = [dingtalk_url("1111111111111111aaaa9f8e"), dingtalk_url("2222222222222222bbbb9f8e")]
SHORT = [dingtalk_url("shortA12"), dingtalk_url("shortB34")]


@pytest.mark.parametrize("urls", [TWINS, SHORT])
def test_robots_that_look_alike_masked_both_import_and_both_find_themselves_again(app, make_channel, urls):
    for n, url in enumerate(urls):
        make_channel("dingtalk", {"url": url}, hooks_=["order_pay_hook"])
    with app.app_context():
        complete, masked = settings_io.export(include_secrets=True), settings_io.export()
        assert masked["channels"][0]["config"]["url"] == masked["channels"][1]["config"]["url"]  # look alike
        fingerprints = [c["fingerprint"] for c in masked["channels"]]
        assert len(set(fingerprints)) == 2 and all(f.startswith("hmac-sha256:") for f in fingerprints)
        for channel in db.session.scalars(db.select(Channel)):
            db.session.delete(channel)
        db.session.commit()
        # Into an empty install (the file with secrets): two robots, not "the same target twice".
        assert counts(settings_io.import_(json.dumps(complete))) == (2, 0, 0)
        # The export without secrets, edited and imported again: each robot finds itself.
        masked["channels"][0]["description"], masked["channels"][1]["description"] = "first", "second"
        result = settings_io.import_(json.dumps(masked), replace=True)
        assert counts(result) == (0, 2, 0)
    assert robots(app) == {urls[0]: ("first", ["order_pay_hook"], None), urls[1]: ("second", ["order_pay_hook"], None)}


@pytest.mark.parametrize("urls", [TWINS, SHORT])
def test_robot_b_never_replaces_robot_a(app, runner, make_channel, tmp_path, urls):
    """Issue 12: importing robot B into an install holding robot A with a short token said
    `0 added, 1 updated` and A's URL, description and hooks were gone."""
    make_channel("dingtalk", {"url": urls[0]}, hooks_=["stock_alarm_hook"])
    with app.app_context():
        channel = db.session.scalar(db.select(Channel))
        channel.description = "Robot A"
        db.session.commit()
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"format": "merchant-notify-settings", "version": 1, "channels": [
        {"kind": "dingtalk", "description": "Robot B", "config": {"url": urls[1]}, "hooks": ["order_pay_hook"]}]}))
    result = runner.invoke(args=["settings", "import", str(path)])
    assert result.exit_code == 0 and "1 added, 0 updated, 0 deleted" in result.output, result.output
    assert robots(app) == {urls[0]: ("Robot A", ["stock_alarm_hook"], None),
                           urls[1]: ("Robot B", ["order_pay_hook"], None)}


def test_an_update_names_the_channel_it_replaces_in_the_cli(app, runner, make_channel, tmp_path):
    make_channel("dingtalk", {"url": TWINS[0]}, hooks_=["stock_alarm_hook"])
    with app.app_context():
        db.session.scalar(db.select(Channel)).description = "Warehouse group"
        db.session.commit()
        doc = settings_io.export()
    doc["channels"][0]["description"] = "Renamed"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(args=["settings", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "0 added, 1 updated, 0 deleted" in result.output
    assert "Updated (their settings replaced by the file's):\n  - dingtalk " \
           "https://oapi.dingtalk.com/robot/send?access_token=••••••••9f8e (Warehouse group)" in result.output
    assert "aaaa9f8e" not in result.output


def test_the_same_credential_twice_in_a_file_is_refused(app):
    doc = {"format": "merchant-notify-settings", "version": 1, "channels": [
        {"kind": "dingtalk", "config": {"url": TWINS[0]}, "hooks": ["order_pay_hook"]},
        {"kind": "dingtalk", "config": {"url": TWINS[0].replace("oapi.dingtalk.com", "proxy.example.com")},
         "hooks": ["order_pay_hook"]}]}
    with app.app_context(), pytest.raises(settings_io.ImportError_) as error:
        settings_io.import_(json.dumps(doc))
    assert error.value.problems == ["channels[1]: the same dingtalk target appears twice"]


def test_the_fingerprint_is_keyed_so_the_file_alone_cannot_test_guesses(app, make_channel):
    import hashlib

    make_channel("dingtalk", {"url": SHORT[0]}, hooks_=["order_pay_hook"])
    with app.app_context():
        given = settings_io.export()["channels"][0]["fingerprint"]
        assert hashlib.sha256(b"shortA12").hexdigest() not in given
        assert given == settings_io.fingerprint("dingtalk", "shortA12")
        app.config["SECRET_KEY"] = "another-install"
        assert settings_io.fingerprint("dingtalk", "shortA12") != given
        # So a file from an install with another key matches nothing here: refused, not merged.
        with pytest.raises(settings_io.ImportError_) as error:
            settings_io.import_(json.dumps({"format": "merchant-notify-settings", "version": 1, "channels": [
                {"kind": "dingtalk", "config": {"url": dingtalk_url("••••••••")}, "fingerprint": given,
                 "hooks": ["order_pay_hook"]}]}))
        assert "access_token is masked" in str(error.value)


def older_export(*urls_and_descriptions) -> str:
    """An export without secrets as versions before the fingerprint wrote it."""
    from notify.channels.dingtalk.transport import DingTalkTransport

    return json.dumps({"format": "merchant-notify-settings", "version": 1, "channels": [
        {"kind": "dingtalk", "description": description, "enabled": True,
         "config": {"url": DingTalkTransport.mask_url(url), "mentions": {}}, "hooks": ["order_pay_hook"]}
        for url, description in urls_and_descriptions]})


def test_an_older_file_never_updates_on_a_masked_match_and_says_so(app, runner, make_channel, tmp_path):
    make_channel("dingtalk", {"url": SHORT[0]}, hooks_=["stock_alarm_hook"])
    make_webhook_url = "https://keep.example.com/h"
    make_channel("webhook", {"url": make_webhook_url, "auth_mode": "signature"}, secret="whsec_x_secret_123456")
    path = tmp_path / "old.json"
    # It names robot B (masked to the same "••••••••" as A) and not the WebHook.
    path.write_text(older_export((SHORT[1], "Robot B")))
    result = runner.invoke(args=["settings", "import", str(path), "--replace"])
    assert result.exit_code == 0, result.output
    assert "0 added, 0 updated, 1 deleted" in result.output
    assert "Left as they are" in result.output and "  - dingtalk " \
        "https://oapi.dingtalk.com/robot/send?access_token=•••••••• (Robot B)" in result.output
    # Robot A is untouched, and --replace did not delete it on a guess; the WebHook went.
    assert robots(app) == {SHORT[0]: ("", ["stock_alarm_hook"], None)}


def test_an_older_file_still_imports_what_it_can_identify(app, make_channel, make_webhook):
    make_webhook("https://a.example.com/h", hooks_=["order_pay_hook"])
    with app.app_context():
        doc = settings_io.export()
        doc["channels"][0]["hooks"] = ["order_create_hook"]
        doc["channels"].append(json.loads(older_export((TWINS[0], "")))["channels"][0])
        # A masked robot that looks like none here cannot be added: it says what to do.
        with pytest.raises(settings_io.ImportError_) as error:
            settings_io.import_(json.dumps(doc))
        assert error.value.problems[0].startswith("channels[1].url: its access_token is masked")
        doc["channels"].pop()
        assert counts(settings_io.import_(json.dumps(doc))) == (0, 1, 0)
        assert db.session.scalar(db.select(Channel)).hooks == ["order_create_hook"]


def test_the_page_imports_a_file_and_names_what_it_replaced(app, login, make_channel):
    import io

    make_channel("dingtalk", {"url": SHORT[0]}, hooks_=["stock_alarm_hook"])
    with app.app_context():
        db.session.scalar(db.select(Channel)).description = "Robot A"
        db.session.commit()
    exported = login.get("/settings/notifications/file/export")
    assert exported.status_code == 200 and exported.headers["Cache-Control"] == "no-store"
    assert "shortA12" not in exported.text and "attachment" in exported.headers["Content-Disposition"]
    doc = exported.json
    doc["channels"][0]["description"] = "Renamed"
    doc["channels"].append({"kind": "dingtalk", "description": "Robot B", "config": {"url": SHORT[1]},
                            "hooks": ["order_pay_hook"]})
    page = login.post("/settings/notifications/file/import", data={
        "file": (io.BytesIO(json.dumps(doc).encode()), "settings.json")}, content_type="multipart/form-data")
    assert page.status_code == 200
    assert "Imported: 1 added, 1 updated, 0 deleted." in page.text
    assert "Replaced by the file's settings" in page.text
    assert "DingTalk <code>https://oapi.dingtalk.com/robot/send?access_token=••••••••</code> (Robot A)" in page.text
    assert robots(app) == {SHORT[0]: ("Renamed", ["stock_alarm_hook"], None),
                           SHORT[1]: ("Robot B", ["order_pay_hook"], None)}
    # A file that cannot be imported: every problem listed, nothing changed, in Chinese too.
    page = login.post("/settings/notifications/file/import", data={
        "file": (io.BytesIO(b'{"format": "merchant-notify-settings", "version": 1, "channels": [{"kind": "fax"}]}'),
                 "bad.json")}, content_type="multipart/form-data", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200 and "channels[0].kind: &#39;fax&#39;" in page.text and "没有任何更改" in page.text
    assert len(robots(app)) == 2


@pytest.mark.parametrize("method, url", [("GET", "/settings/notifications/file"),
                                         ("GET", "/settings/notifications/file/export?secrets=1"),
                                         ("POST", "/settings/notifications/file/import")])
def test_the_settings_file_pages_require_login(client, admin, method, url):
    response = client.open(url, method=method)
    assert response.status_code == 302 and "/login" in response.location
