"""The catalogues: every text is extracted, and the Chinese catalogue translates all of it."""
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
