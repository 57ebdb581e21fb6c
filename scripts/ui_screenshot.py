"""The README's picture of the study's view in the MLflow UI: docs/mlflow_view.png.

Serves this project's tracking store, opens the view `make study` prints (the training runs
grouped by variant) in the headless browser of the tests, checks that every variant of
params.yaml is a group there, and saves the page.

    python -m scripts.ui_screenshot     (make screenshot; after make study)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pipeline.core.loading import load_params
from pipeline.tracking import ui_view
from tests.support.browser import Browser
from tests.support.servers import mlflow_server

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "docs" / "mlflow_view.png"
ASSISTANT_SHOWN = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"


def main() -> None:
    params = load_params(ROOT / "params.yaml")
    variants = list(params.variants)
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = Path(scratch) / "artifacts"
        with mlflow_server(f"sqlite:///{ROOT / 'mlflow.db'}", artifacts) as url:
            address = ui_view.view_address(url, params.mlflow.experiment)
            if address == url:
                sys.exit(f"{params.mlflow.experiment}: no report has set up its view yet")
            with Browser(Path(scratch) / "profile") as browser:
                tab = browser.open(f"{url}/health")
                browser.evaluate(tab, f"localStorage.setItem('{ASSISTANT_SHOWN}', 'true')")
                browser.navigate(tab, address)
                groups = [f"Group: {name}" for name in variants]
                text = browser.text_once(tab, [*groups, "val_loss", "loss_gap"])
                absent = [g for g in groups if g not in text]
                if absent:
                    sys.exit(f"not in the view: {', '.join(absent)}")
                time.sleep(2)  # the charts' last frame
                browser.screenshot(tab, OUT)
    print(f"{OUT.relative_to(ROOT)}: {address.replace(url, 'http://127.0.0.1:5000')}")


if __name__ == "__main__":
    main()
