"""The seed comparison table, measured: MAE (from eval results), size and speed, beside the published row.

Row kinds: ``architecture`` (a registered network, randomly initialised: size and speed only),
``run`` (a training run folder: its ``eval/*.json`` give the MAE columns) and ``weights`` (any other
model source, e.g. imported Keras weights; MAE from ``--results`` files that name it).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from agecompact.bench.published import PUBLISHED
from agecompact.errors import InputError
from agecompact.runfolder import EvalResult

TABLE_ARCHS = ("ssrnet", "c3ae", "c3ae_full", "aec")
SCHEMA_VERSION = 1


def read_eval_results(paths: list[Path]) -> list[dict[str, Any]]:
    """Eval result files (written by ``agecompact eval``); unreadable ones are an input error."""
    results = []
    for p in paths:
        r = EvalResult.read(p)
        results.append({"path": str(p), "model": r.model, "dataset": r.dataset_name, "mae": r.mae,
                        "split": r.dataset.get("split"), "count": r.metrics.get("count")})
    return results


SPLIT_PREFERENCE = {"test": 0, "val": 1}  # held-out splits first; anything else ("all", unknown) after them


def mae_columns(results: list[dict[str, Any]]) -> dict[str, Any]:
    """IMDB and WIKI MAE from eval results, and the MAE on any other dataset (demo, utkface, ...) kept
    apart so it is never read as an IMDB/WIKI number. Per dataset a test result beats a val result beats
    the rest, the newest file breaks ties, and a training-split result is never shown."""
    cols: dict[str, Any] = {"imdb_mae": None, "wiki_mae": None, "other_mae": {}}
    chosen: dict[str, dict[str, Any]] = {}
    for r in sorted(results, key=lambda r: Path(r["path"]).stat().st_mtime):
        if r.get("split") == "train":
            continue
        rank = SPLIT_PREFERENCE.get(r.get("split"), 2)
        held = chosen.get(r["dataset"])
        if held is None or rank <= SPLIT_PREFERENCE.get(held.get("split"), 2):
            chosen[r["dataset"]] = r
    for dataset, r in chosen.items():
        if dataset in ("imdb", "wiki"):
            cols[f"{dataset}_mae"] = r["mae"]
        else:
            cols["other_mae"][dataset] = r["mae"]
    return cols


def _other(m: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(m.get("other_mae", {}).items())) or "—"


def _model_file_bytes(model) -> int:
    from agecompact.weights import modelfile

    return len(modelfile.encode(model.meta, model.state_dict()))


class SpeedProbe:
    """Measures ms/face at batch 1 and faces/s at a large batch once per architecture."""

    def __init__(self, *, backend: str, runs: int, large_batch: int, max_seconds: float,
                 quantize: str | None = None):
        self.backend = backend
        self.quantize = quantize
        self.runs, self.large_batch, self.max_seconds = runs, large_batch, max_seconds
        self._cache: dict[str, dict[str, Any]] = {}
        self.engine_name: str | None = None

    def measure(self, model) -> dict[str, Any]:
        import numpy as np

        from agecompact.bench.timing import time_call
        from agecompact.inference import get_engine

        if model.arch in self._cache:
            return self._cache[model.arch]
        engine = get_engine(model, self.backend, quantize=self.quantize)
        self.engine_name = engine.name
        rng = np.random.default_rng(0)
        one = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
        big = rng.integers(0, 256, (self.large_batch, 64, 64, 3), dtype=np.uint8)
        lat = time_call(lambda: engine.predict(one, batch_size=1), runs=self.runs, warmup=10,
                        max_seconds=self.max_seconds)
        thr = time_call(lambda: engine.predict(big, batch_size=self.large_batch),
                        runs=max(3, self.runs // 20), warmup=2, max_seconds=self.max_seconds)
        result = {"latency_ms": lat, "throughput_fps": self.large_batch / (thr["median_ms"] / 1e3),
                  "throughput_batch": self.large_batch, "engine": engine.name}
        self._cache[model.arch] = result
        return result


def build_rows(*, runs: list[Path], models: list[str], results: list[Path], probe: SpeedProbe | None
               ) -> list[dict[str, Any]]:
    from agecompact.api import AgeModel, load_model
    from agecompact.models.registry import create_model
    from agecompact.runfolder import EVAL_DIR
    from agecompact.weights.modelfile import ModelMeta

    extra_results = read_eval_results(results)
    entries: list[tuple[str, str, Any, list[dict[str, Any]], str | None]] = []
    for arch in TABLE_ARCHS:
        entries.append(("architecture", arch, AgeModel(create_model(arch), ModelMeta.for_arch(arch)), [], None))
    for run in runs:
        run = Path(run)
        if not run.is_dir():
            raise InputError(f"run folder not found: {run}")
        model = load_model(run)
        entries.append(("run", run.name, model, read_eval_results(sorted((run / EVAL_DIR).glob("*.json"))), str(run)))
    for source in models:
        model = load_model(source)
        mine = [r for r in extra_results if r["model"] in (model.name, source)]
        entries.append(("weights", model.name, model, mine, str(source)))

    rows = []
    for (kind, _, model, evals, source), label in zip(entries, _unique_labels(entries), strict=True):
        size = model.path.stat().st_size if kind == "run" and model.path else _model_file_bytes(model)
        published = PUBLISHED.get(model.arch) if kind == "architecture" else None
        row = {
            "model": label,
            "kind": kind,
            "arch": model.arch,
            "source": source,
            "measured": {
                **mae_columns(evals),
                "eval_results": [r["path"] for r in evals],
                "params": model.num_params,
                "file_bytes": size,
                "file_kb": round(size / 1024, 1),
            },
            "published": asdict(published) if published else None,
        }
        if probe is not None:
            row["measured"].update(probe.measure(model))
        rows.append(row)
    return rows


def _unique_labels(entries: list[tuple[str, str, Any, Any, Any]]) -> list[str]:
    """Row names that tell rows apart: architecture rows keep the architecture's name; a run or weights row
    whose name is taken gets its kind ("aec (weights)"), then a count ("aec (weights) 2")."""
    labels: list[str] = []
    taken = {label for kind, label, *_ in entries if kind == "architecture"}
    names = [label for _, label, *_ in entries]
    for (kind, label, *_), name in zip(entries, names, strict=True):
        if kind != "architecture" and (label in taken or names.count(name) > 1):
            label = f"{label} ({kind})"
            base, n = label, 2
            while label in taken:
                label, n = f"{base} {n}", n + 1
        taken.add(label)
        labels.append(label)
    return labels


def table_document(rows: list[dict[str, Any]], probe: SpeedProbe | None, device: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "device": device,
        "backend": probe.engine_name if probe else None,
        "timing": None if probe is None else {
            "latency": "ms per face at batch 1: median (min-max) after warm-up; compilation excluded",
            "throughput": f"faces/s at batch {probe.large_batch}, median run",
        },
        "rows": rows,
    }


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def render_rich(doc: dict[str, Any]):
    from rich.table import Table

    device = doc["device"]
    where = f"{device.get('device_kind') or device.get('backend')}" + (f", {doc['backend']}" if doc["backend"] else "")
    table = Table(title=f"Compact age estimators — measured here ({where}) vs published")
    measured = ["IMDB MAE", "WIKI MAE", "other MAE", "params", "size KB", "ms/face b1", "faces/s"]
    published = ["pub. IMDB", "pub. WIKI", "pub. params", "pub. KB", "pub. ms"]
    table.add_column("model")
    for col in measured:
        table.add_column(col, justify="right")
    for col in published:
        table.add_column(col, justify="right", style="dim")
    for r in doc["rows"]:
        m, p = r["measured"], r["published"] or {}
        lat = m.get("latency_ms")
        lat_s = "—" if not lat else f"{lat['median_ms']:.3f} ({lat['min_ms']:.3f}–{lat['max_ms']:.3f})"
        label = r["model"] if r["kind"] == "architecture" else f"{r['model']} [{r['kind']}: {r['arch']}]"
        table.add_row(
            label, _fmt(m["imdb_mae"]), _fmt(m["wiki_mae"]), _other(m), f"{m['params']:,}", f"{m['file_kb']:.1f}", lat_s,
            _fmt(m.get("throughput_fps"), ",.0f"),
            _fmt(p.get("imdb_mae")), _fmt(p.get("wiki_mae")),
            "—" if not p else f"{p['params']:,}", _fmt(p.get("size_kb"), "d"),
            "—" if not p.get("time_ms") else f"{p['time_ms']} ({p['device']})",
        )
    table.caption = ("MAE: from eval results in run folders or --results files (— = none); other MAE: datasets "
                     "other than IMDB/WIKI (e.g. the synthetic demo data). Sizes: our model file. "
                     "Published values (dim) are the papers'/READMEs' numbers, not measured here.")
    return table


def render_markdown(doc: dict[str, Any]) -> str:
    device = doc["device"]
    lines = [
        f"Measured on {device.get('cpu') or ''} ({device.get('backend')}, {doc['backend'] or 'no timing'}); "
        "published values in the last columns.",
        "",
        "| model | IMDB MAE | WIKI MAE | other MAE | params | size (KB) | ms/face (b=1) | faces/s | "
        "published IMDB / WIKI | published params | published size | published time |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        m, p = r["measured"], r["published"] or {}
        lat = m.get("latency_ms")
        lat_s = "—" if not lat else f"{lat['median_ms']:.3f}"
        lines.append(
            f"| {r['model']} | {_fmt(m['imdb_mae'])} | {_fmt(m['wiki_mae'])} | {_other(m)} | {m['params']:,} | "
            f"{m['file_kb']:.1f} | "
            f"{lat_s} | {_fmt(m.get('throughput_fps'), ',.0f')} | "
            f"{_fmt(p.get('imdb_mae'))} / {_fmt(p.get('wiki_mae'))} | {'—' if not p else format(p['params'], ',')} | "
            f"{'—' if not p.get('size_kb') else str(p['size_kb']) + ' KB'} | "
            f"{'—' if not p.get('time_ms') else str(p['time_ms']) + ' ms (' + p['device'] + ')'} |"
        )
    return "\n".join(lines) + "\n"
