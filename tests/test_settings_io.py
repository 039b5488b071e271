"""Settings as a file: export, import, validation, and the CLI."""
import json

import pytest

from extensions import db
from models import Channel
from notify import settings_io


def test_export_leaves_secrets_out_unless_asked(app, make_webhook):
    make_webhook("https://a.example.com/h", secret="whsec_aaaaaaaaaaaaaaaaaaaa", hooks_=["order_pay_hook"])
    with app.app_context():
        doc = settings_io.export()
        assert doc["format"] == "merchant-notify-settings" and doc["version"] == 1
        (channel,) = doc["channels"]
        assert channel == {"kind": "webhook", "description": "", "enabled": True,
                           "config": {"url": "https://a.example.com/h", "auth_mode": "signature"},
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
        assert settings_io.import_(json.dumps(doc)) == {"created": 0, "updated": 1, "deleted": 0}
        channel = db.session.scalar(db.select(Channel))
        assert channel.secret == "whsec_keep_me_please_123" and channel.description == "ERP"
        assert channel.hooks == ["order_create_hook", "order_pay_hook"]


def test_replace_deletes_channels_missing_from_the_file(app, make_webhook):
    make_webhook("https://a.example.com/h")
    make_webhook("https://b.example.com/h")
    with app.app_context():
        doc = settings_io.export(include_secrets=True)
        doc["channels"] = doc["channels"][:1]
        assert settings_io.import_(json.dumps(doc), replace=True) == {"created": 0, "updated": 1, "deleted": 1}
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
        assert settings_io.import_(json.dumps(doc)) == {"created": 0, "updated": 2, "deleted": 0}
        channel = db.session.scalar(db.select(Channel).where(Channel.kind == "dingtalk"))
        assert channel.config["url"] == ROBOT_URL and channel.secret == "SECabcdef0123456789"
        assert channel.hooks == ["stock_alarm_hook", "key_stock_alarm_hook"]
        # Into an install that does not have the robot, a masked URL cannot work: it says so.
        db.session.delete(channel)
        db.session.commit()
        with pytest.raises(settings_io.ImportError_) as error:
            settings_io.import_(json.dumps(doc))
        assert "channels[0].url" in str(error.value) and "access_token" in str(error.value)
