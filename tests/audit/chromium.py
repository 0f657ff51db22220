"""Render a report in headless Chromium (Debian's ``chromium``, installed by .ci/run) and say what
a reader would see: a screenshot, and how many of the page's images decoded.

Tests of any ``--report`` call `render(html_path, tmp_path)` and assert `Rendered.ok`; it skips the
test, saying why, when no chromium binary is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# counts the images and those that decoded (complete with a natural width), once the page has loaded
_PROBE = ("<script>window.addEventListener('load',()=>{const im=[...document.images];"
          "document.body.setAttribute('data-images',im.length);"
          "document.body.setAttribute('data-loaded',im.filter(i=>i.complete&&i.naturalWidth>0).length)})</script>")
_BODY = re.compile(r'<body[^>]*\bdata-images="(\d+)"[^>]*\bdata-loaded="(\d+)"')
TIMEOUT_S = 90


@dataclass(frozen=True)
class Rendered:
    images: int  # <img> elements on the page
    loaded: int  # of those, decoded with a non-zero natural width
    screenshot: Path
    pixel_std: float  # standard deviation of the screenshot's grey levels (0 for a blank page)

    @property
    def ok(self) -> bool:
        """Not blank, and every image loaded."""
        return self.pixel_std > 5.0 and self.loaded == self.images


def chromium() -> str:
    """The chromium binary; skips the test when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless chromium is not installed (Debian package `chromium`; .ci/run installs it)")


def _run(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def render(html_path: Path, workdir: Path, size: tuple[int, int] = (1100, 1600)) -> Rendered:
    """Screenshot `html_path` and count its decoded images (on a copy with a counting script
    added; the report itself carries no script)."""
    exe = chromium()
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             f"--user-data-dir={workdir / 'chromium-profile'}"]
    shot = workdir / f"{html_path.stem}.png"
    _run([*flags, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", html_path.resolve().as_uri()])
    probed = workdir / f"{html_path.stem}.probe.html"
    probed.write_text(html_path.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>", 1),
                      encoding="utf-8")
    dom = _run([*flags, "--dump-dom", probed.resolve().as_uri()])
    m = _BODY.search(dom)
    if m is None:
        raise AssertionError(f"the counting script did not run: {dom[:500]!r}")
    from PIL import Image, ImageStat

    with Image.open(shot) as im:
        std = ImageStat.Stat(im.convert("L")).stddev[0]
    return Rendered(images=int(m.group(1)), loaded=int(m.group(2)), screenshot=shot, pixel_std=std)
