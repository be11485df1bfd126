"""The README's picture of a demo's report page: ``report.html`` rendered by headless Chromium
(``autocoa.eval.html_report.screenshot``, the function the browser test checks).

    python docs/results/screenshot.py runs/demo/report/report.html docs/img/report.png
"""

import sys
from pathlib import Path

from autocoa.eval.html_report import screenshot

if __name__ == "__main__":
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2]), width=1200, height=1500))
