"""Training the fraud model from labeled history: the ``train`` command and what fraud_trainer
does with a label-export drop in S3.

Window: a payment's label is trusted once the label delay has passed, so only payments at least
``delay_days`` before the export's last payment are used. The last ``holdout_days`` of those
are held out: the model trained on the rest is scored there for its metrics and for the
calibrated decision thresholds (which belong to that exact model). Features are the streaming
features (offline driver, same definitions as the Lambda).

    python -m streamsense.fraud.training EXPORT.csv[.gz] [--out build/models/fraud] [--days 7]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamsense.events import BadEvent
from streamsense.fraud import history as H
from streamsense.fraud.features import PAYMENT_FEATURES
from streamsense.fraud.model import (
    PRODUCT_PARAMS,
    FraudModel,
    calibrate_thresholds,
    fit_model,
    manifest_for,
)
from streamsense.fraud.registry import artifact_key, publish, write_dir
from streamsense.storage import ObjectStore

EXPORT_PREFIX = "fraud-labels/"
MIN_FRAUDS = 20


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def train(h: H.History, version: str, *, train_days: int = 7, holdout_days: int = 7, delay_days: int = 7, params: dict[str, Any] | None = None) -> FraudModel:
    """Train on the ``train_days`` before the holdout (the protocol the benchmark validates:
    recent data beats long history under drift); metrics and thresholds from the holdout."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    X = H.features_of(h)
    day = h.day()
    end = int(day.max()) - delay_days  # last day whose labels are mature
    hold = (day > end - holdout_days) & (day <= end)
    fit_rows = (day > end - holdout_days - train_days) & (day <= end - holdout_days)
    if h.fraud[fit_rows].sum() < MIN_FRAUDS or h.fraud[hold].sum() < 1:
        raise BadEvent("insufficient_labels", f"{int(h.fraud[fit_rows].sum())} frauds to train on, {int(h.fraud[hold].sum())} held out")
    chosen = dict(params if params is not None else PRODUCT_PARAMS)
    trees = fit_model(X[fit_rows], h.fraud[fit_rows], chosen)
    model = FraudModel(trees, {"features": list(PAYMENT_FEATURES)})
    scores = model.score(X[hold])
    y = h.fraud[hold]
    metrics = {
        "holdout_auc": round(float(roc_auc_score(y, scores)), 6),
        "holdout_ap": round(float(average_precision_score(y, scores)), 6),
        "holdout_rows": int(hold.sum()),
        "holdout_frauds": int(y.sum()),
        "train_rows": int(fit_rows.sum()),
        "train_frauds": int(h.fraud[fit_rows].sum()),
    }
    thresholds = calibrate_thresholds(scores, y)
    ts = h.ts_ms[fit_rows]
    window = (_date(int(ts.min())), _date(int(ts.max())))
    model.manifest = manifest_for(version, PAYMENT_FEATURES, window, metrics, thresholds, chosen)
    model.manifest["holdout_window"] = {"start": _date(int(h.ts_ms[hold].min())), "end": _date(int(h.ts_ms[hold].max()))}
    return model


@dataclass
class TrainOutcome:
    version: str
    published: bool
    model: FraudModel | None = None


def version_for(bucket: str, key: str, etag: str, version_id: str | None) -> str:
    """Same export object -> same version id: a duplicated notification publishes nothing."""
    ident = f"{bucket}|{key}|{etag}|{version_id or ''}"
    return "v" + hashlib.sha256(ident.encode()).hexdigest()[:16]


def train_from_export(bucket: str, key: str, etag: str, version_id: str | None, *, exports: ObjectStore, models: ObjectStore) -> TrainOutcome:
    """fraud_trainer's domain call: export -> features -> train -> candidate version in the
    model store (scored in shadow until promoted). Raises BadEvent for an unusable export."""
    version = version_for(bucket, key, etag, version_id)
    if models.exists(artifact_key(version, "manifest.json")):
        return TrainOutcome(version, False)
    try:
        h = H.read_csv(exports.get(key))
    except H.BadHistory as exc:
        raise BadEvent("bad_export", str(exc)) from None
    model = train(h, version)
    model.manifest["source"] = {"bucket": bucket, "key": key, "etag": etag}
    publish(models, model, stage="candidate")
    return TrainOutcome(version, True, model)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streamsense.fraud.training", description=__doc__.split("\n\n")[0])
    ap.add_argument("export", type=Path, help="labeled payment history (CSV, optionally .gz)")
    ap.add_argument("--out", type=Path, default=Path("build/models/fraud"), help="artifact folder (the model layer reads build/models/)")
    ap.add_argument("--train-days", type=int, default=7)
    args = ap.parse_args(argv)
    data = args.export.read_bytes()
    h = H.load_handbook(str(args.export)) if args.export.name.endswith(".gz") else H.read_csv(data)
    version = "v" + hashlib.sha256(data).hexdigest()[:16]
    model = train(h, version, train_days=args.train_days)
    write_dir(model, args.out)
    m = model.manifest
    print(f"fraud model {version}: trained on {m['data_window']['start']}..{m['data_window']['end']}, "
          f"holdout AUC {m['metrics']['holdout_auc']:.4f} AP {m['metrics']['holdout_ap']:.4f}; thresholds {m['thresholds']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

