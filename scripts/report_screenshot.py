"""Render the catalogue's HTML verification report and photograph it in headless Chromium.

    python scripts/report_screenshot.py [--out report.png] [--height 6000]

Needs Debian's chromium (``apt-get install chromium``). The page must work offline: Chromium
runs with networking features off and the report loads nothing from elsewhere.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 6000) -> None:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--screenshot={png}",
                        html.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    parser.add_argument("--height", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "report.html"
        subprocess.run([sys.executable, "-m", "optgen.cli", "verify", "--format", "html",
                        "-o", str(html)], check=True)
        screenshot(html, args.out, height=args.height)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
