"""The API tokens page tells the shop which header to send, in both languages."""
import pytest


@pytest.mark.parametrize("lang, sentence", [
    ("en", "with the header Authorization: Bearer &lt;token&gt;."),
    ("zh_CN", "通过请求头 Authorization: Bearer &lt;token&gt; 向"),
])
def test_tokens_page_shows_the_header_with_its_placeholder(login, lang, sentence):
    page = login.get(f"/settings/tokens/?lang={lang}").text
    assert sentence in page
