"""``viz.browser.screenshot`` reloads a page that sits still without showing what is waited for (headless, the
rerun web viewer can stop half-loaded). A real Chromium and a local page that turns green only once reloaded."""

import functools
import http.server
import threading

import pytest

from action_images_ros.viz.browser import chromium_path, screenshot

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="no chromium on the PATH (make test installs it)")

PAGE = """<!doctype html><html><body style="margin:0"><script>
const n = Number(sessionStorage.getItem("loads") || 0) + 1;  // survives a reload, not a new session
sessionStorage.setItem("loads", n);
document.body.style.background = n > 1 ? "rgb(0,255,0)" : "rgb(255,0,0)";
document.body.style.height = "100vh";
</script></body></html>"""


@pytest.fixture
def page_url(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def _green(im):
    return im[..., 1].mean() > 200 and im[..., 0].mean() < 50


def test_a_page_that_sits_still_is_reloaded_until_it_shows_what_is_waited_for(page_url):
    kw = dict(width=320, height=240, wait_s=1.0, settle_s=8.0, settle_every_s=0.5, until=_green)
    stuck = screenshot(page_url, **kw)  # no reload: the first load stays red until settle_s
    assert stuck[..., 0].mean() > 200 and not _green(stuck)
    assert _green(screenshot(page_url, reload_stalled_s=1.5, **kw))
