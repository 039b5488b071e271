"""The catalogues: every text is extracted, and the Chinese catalogue translates all of it."""
import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
ZH = ROOT / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"


def read(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def test_the_template_is_up_to_date_with_the_code(tmp_path):
    """`make messages` was run after the last text change: extracting now finds nothing new."""
    fresh = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_l",
                    "-k", "lazy_gettext", "--no-location", "--ignore-dirs=.venv instance receiver_demo tests migrations",
                    "-o", str(fresh), "."], cwd=ROOT, check=True, capture_output=True)
    extracted = {m.id if isinstance(m.id, str) else m.id[0] for m in read(fresh) if m.id}
    stored = {m.id if isinstance(m.id, str) else m.id[0] for m in read(ROOT / "translations" / "messages.pot") if m.id}
    assert extracted - stored == set(), "run `make messages` and translate the new texts"


def test_the_chinese_catalogue_translates_every_message_with_the_same_placeholders():
    template = read(ROOT / "translations" / "messages.pot")
    catalogue = read(ZH)
    missing = []
    for message in template:
        if not message.id:
            continue
        translated = catalogue.get(message.id)
        strings = [] if translated is None else (
            [translated.string] if isinstance(translated.string, str) else list(translated.string))
        if not strings or not all(strings) or (translated is not None and translated.fuzzy):
            missing.append(message.id)
    assert missing == []
    problems = [(message.id, error) for message, errors in catalogue.check() for error in errors]
    assert problems == []


ALLOWED_WORDS = {"merchant-notify", "HTTP", "SMTP"}  # names, not words to translate


def untranslated_words(source: str) -> list[str]:
    """Words a person would read in a template that are not inside a Jinja expression (where
    gettext is called): the text between tags, and the text of attributes people read."""
    source = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", source, flags=re.S)
    attributes = re.findall(r'\b(?:title|placeholder|aria-label|alt|value|data-confirm|data-pending)="([^"]*)"', source)
    text = re.sub(r"<[^>]*>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", source, flags=re.S))
    words = re.findall(r"[A-Za-z\u4e00-\u9fff][\w\-\u4e00-\u9fff]*", text + " " + " ".join(attributes))
    return [w for w in words if w not in ALLOWED_WORDS]


def test_the_text_check_finds_text_outside_gettext():
    assert untranslated_words('<p title="Hi there">{{ _("Fine") }} Save</p>{# note #}') == ["Save", "Hi", "there"]
    assert untranslated_words('<button aria-label="{{ _(\'Menu\') }}">{{ _("Save") }}</button>') == []


def test_every_template_says_everything_through_gettext():
    found = {}
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.is_file() and path.suffix in (".html", ".md", ".txt"):
            words = untranslated_words(path.read_text(encoding="utf-8"))
            if words:
                found[str(path.relative_to(ROOT))] = words
    assert found == {}
