"""A real browser against Dooz: headless Chromium (Debian's chromium and
chromedriver, driven by Selenium) loads a page served from another origin (a
python http.server on its own 127.0.0.1 port), uploads with fetch PUT to a
presigned URL (a preflighted request: its Content-Type is not CORS-safelisted),
posts a signed POST Object form (FormData) and reads both objects back with
presigned GETs, all allowed by the bucket's
CORS rules; the same page's fetch to a bucket without CORS rules is blocked by
the browser. Nothing here skips: without Chromium the test fails."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from helpers import Process, find_tool, free_port, http_status

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dooz browser test</title></head>
<body><pre id="result"></pre>
<script>
const cfg = %(cfg)s;
async function run() {
  const out = {};
  try {
    const put = await fetch(cfg.put, {
      method: "PUT",
      headers: {"Content-Type": "application/octet-stream"},
      body: cfg.body,
    });
    out.put_status = put.status;
    out.put_etag = put.headers.get("ETag");
    out.put_sse = put.headers.get("x-amz-server-side-encryption");
    const get = await fetch(cfg.get);
    out.get_status = get.status;
    out.get_body = await get.text();
    // An HTML-form style upload: the signed POST policy's fields, then the file.
    const fd = new FormData();
    for (const [k, v] of Object.entries(cfg.post.fields)) fd.append(k, v);
    fd.append("file", new Blob([cfg.body], {type: "text/plain"}), "form.txt");
    const posted = await fetch(cfg.post.url, {method: "POST", body: fd});
    out.post_status = posted.status;
    out.post_text = await posted.text();
    const back = await fetch(cfg.get_posted);
    out.get_posted_body = await back.text();
  } catch (e) {
    out.error = String(e);
  }
  try {
    const r = await fetch(cfg.blocked);
    out.blocked = "not blocked: " + r.status;
  } catch (e) {
    out.blocked = "blocked";
  }
  document.getElementById("result").textContent = JSON.stringify(out);
}
run();
</script></body></html>
"""


def chromium_driver(tmp_path: Path):
    """Headless Chromium through chromedriver, both from Debian."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(
            "selenium is not installed: run scripts/install-test-deps (scripts/test-requirements.txt pins it)",
            pytrace=False,
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = find_tool("chromium")
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(a)
    service = Service(executable_path=find_tool("chromedriver"), log_output=str(tmp_path / "chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts)


def serve_page(tmp_path: Path, html: str) -> tuple[Process, str]:
    """The page on its own origin: python's http.server on a free port."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(html)
    port = free_port()
    proc = Process(
        "page-server",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        tmp_path / "http.server.log",
        None,
    )
    origin = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while http_status(f"{origin}/index.html") != 200:
        if time.monotonic() > deadline:
            pytest.fail("the page server did not start", pytrace=False)
        time.sleep(0.1)
    return proc, origin


def test_browser_presigned_put_and_get_across_origins(deployment, s3, new_bucket, evidence, tmp_path):
    """browser: fetch PUT and GET to presigned URLs and a POST Object form from another origin (CORS preflight, exposed headers); a bucket without CORS is blocked"""
    bucket = new_bucket()
    closed = new_bucket()
    marker = evidence.new_marker()
    body = f"uploaded by headless Chromium {marker}"
    evidence.known(body.encode())
    s3.put_object(Bucket=closed, Key="k", Body=f"no cors {marker}".encode())
    # The page's origin is only known once its server has a port; the page
    # itself is written after the URLs are signed.
    page, origin = serve_page(tmp_path, "<!doctype html><title>starting</title>")
    try:
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [origin],
                        "AllowedMethods": ["PUT", "GET", "POST"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag", "x-amz-server-side-encryption"],
                        "MaxAgeSeconds": 60,
                    }
                ]
            },
        )
        cfg = {
            "put": s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "from-browser.txt"}, ExpiresIn=600),
            "get": s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "from-browser.txt"}, ExpiresIn=600),
            "blocked": s3.generate_presigned_url("get_object", Params={"Bucket": closed, "Key": "k"}, ExpiresIn=600),
            "body": body,
            "post": s3.generate_presigned_post(
                Bucket=bucket,
                Key="forms/${filename}",
                Fields={"success_action_status": "201"},
                Conditions=[{"success_action_status": "201"}],
                ExpiresIn=600,
            ),
            "get_posted": s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": "forms/form.txt"}, ExpiresIn=600
            ),
        }
        (tmp_path / "site" / "index.html").write_text(PAGE % {"cfg": json.dumps(cfg)})
        driver = chromium_driver(tmp_path)
        try:
            driver.set_page_load_timeout(60)
            driver.get(f"{origin}/index.html")
            deadline = time.monotonic() + 60
            text = ""
            while time.monotonic() < deadline:
                text = driver.find_element("id", "result").text
                if text:
                    break
                time.sleep(0.2)
        finally:
            driver.quit()
        assert text, "[chromium] the page produced no result within 60 s"
        out = json.loads(text)
        assert "error" not in out, f"[chromium] fetch failed: {out}"
        assert out["put_status"] == 200, out
        stored = s3.head_object(Bucket=bucket, Key="from-browser.txt")
        assert out["put_etag"] == stored["ETag"], f"[chromium] ETag exposed to the script: {out}"
        assert out["put_sse"] == "AES256", out
        assert out["get_status"] == 200 and out["get_body"] == body, out
        assert out["post_status"] == 201 and "<Key>forms/form.txt</Key>" in out["post_text"], out
        assert out["get_posted_body"] == body, out
        assert out["blocked"] == "blocked", f"[chromium] a bucket without CORS rules must be unreadable cross-origin: {out}"
        assert s3.get_object(Bucket=bucket, Key="from-browser.txt")["Body"].read() == body.encode()
    finally:
        page.terminate(grace=5)
