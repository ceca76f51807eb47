"""Accuracy of the training recipes and of the zoo models, measured so the numbers can be defended.

Protocol (README "Accuracy"):

* **Held-out rows, never tuned on.** UTKFace gets a 10 % hold-out chosen by a hash of each file name
  (``preprocess --holdout 0.1``); All-Age-Faces keeps its official ``val`` list. No choice below looks at
  these rows: they are only evaluated, once, at the end.
* **Ablations** train on the remaining rows only, validating on a seeded 15 % of them ("dev" files).
  The recipe and the architecture of the zoo models are picked on that dev validation.
* **Zoo candidates** train on every non-held-out row with the chosen recipe; their *last* epoch is
  exported (no epoch is selected on the held-out rows) and evaluated on the held-out rows, on the
  64x64 chips and through detection (YuNet on the original photo, the model's own crop, the largest
  face).
* The shipped zoo models are those runs' last epochs (a pair: two of them joined): they never saw the
  held-out rows, so the held-out numbers are theirs.

Stages (each skipped when its output exists, so the script resumes; ``pair`` measures again): ``prepare`` (preprocess),
``ablate`` (short runs), ``zoo`` (long runs), ``pair`` (two finished runs joined into one ``aec_pair`` file and
measured), ``evaluate`` (chips + detection, JSON), ``table``, ``ship`` (into the package zoo).

    python benchmarks/accuracy.py all            # everything (hours on a 2-core CPU)
    python benchmarks/accuracy.py ablate --epochs 10
    python benchmarks/accuracy.py table          # the README table from benchmarks/results/accuracy.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AGECOMPACT_SHARED", ROOT.parent / "shared"))
DATA = ROOT / "data"
RUNS = ROOT / "runs" / "accuracy"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
YUNET = SHARED / "detectors" / "yunet" / "face_detection_yunet_2026may.onnx"
UTK_ROOT = SHARED / "datasets" / "UTKFace"
AAF_ROOT = SHARED / "datasets" / "All-Age-Faces Dataset"
MARGIN = 0.1  # UTKFace chips have ~0.10 / 0.01 of the box around the face: any wider crop would be clipped

AC = [sys.executable, "-m", "agecompact"]

# name: (model, extra train options) — the ablation grid, all at the same epochs on the dev files
ABLATIONS = {
    "ssrnet-paper": ("ssrnet", ["--recipe", "paper"]),
    "ssrnet-modern": ("ssrnet", ["--recipe", "modern"]),
    "c3ae-modern": ("c3ae", ["--recipe", "modern"]),
    "aec-modern": ("aec", ["--recipe", "modern"]),
    # the same AEC runs the long candidates were chosen on (8 epochs): the augmentation policy
    "aec-strong": ("aec", ["--recipe", "modern"]),
    "aec-ssraug": ("aec", ["--recipe", "modern", "--config", "benchmarks/configs/augment-ssrnet.json"]),
    # All-Age-Faces' 1,360 dev training faces three times per epoch beside UTKFace's 16,354
    "aec-aafx3": ("aec", ["--recipe", "modern", "--db-repeat", "1,3"]),
    # C3AE's KL target: the published two-point code against a Gaussian label distribution (sigma 5 years)
    "c3ae-twopoint": ("c3ae", ["--recipe", "modern", "--db-repeat", "1,3"]),
    "c3ae-gauss": ("c3ae", ["--recipe", "modern", "--db-repeat", "1,3", "--config",
                            "benchmarks/configs/c3ae-gaussian.json"]),
}

# zoo candidates: name -> (model, extra train options, epochs, the candidate whose last epoch it starts from)
CANDIDATES = {
    "ssrnet": ("ssrnet", ["--recipe", "modern"], 20, None),
    "aec": ("aec", ["--recipe", "modern"], 15, None),
    # a second cosine cycle of 28 epochs from the 15-epoch run (43 in all: the first was still underfitting)
    "aec-long": ("aec", ["--recipe", "modern", "--init-from", "runs/accuracy/zoo-aec/last.msgpack"], 28, "aec"),
    # AEC without the sharpen convolution: 19,930 values, under the 20,000 of the zoo's "tiny"
    "aec-tiny": ("aec_nosharpen", ["--recipe", "modern"], 28, None),
    # one more 20-epoch cycle each, with All-Age-Faces three times per epoch (ablation aec-aafx3 on the dev
    # split). Fixed before any of their held-out rows were scored: each chain's end is what ships.
    "aec-long2": ("aec", ["--recipe", "modern", "--db-repeat", "1,3", "--init-from",
                          "runs/accuracy/zoo-aec-long/last.msgpack"], 20, "aec-long"),
    "aec-tiny-long": ("aec_nosharpen", ["--recipe", "modern", "--db-repeat", "1,3", "--init-from",
                                        "runs/accuracy/zoo-aec-tiny/last.msgpack"], 20, "aec-tiny"),
    # a third cycle of tiny, as its second (fixed before its held-out rows were scored; its end ships)
    "aec-tiny-long2": ("aec_nosharpen", ["--recipe", "modern", "--db-repeat", "1,3", "--init-from",
                                         "runs/accuracy/zoo-aec-tiny-long/last.msgpack"], 20, "aec-tiny-long"),
    # knowledge distillation: a fourth AEC cycle whose targets blend the labels with the ages of the pair
    # aec-pair2 (then the shipped default), weight 0.5, the teacher's ages averaged with the mirror. The
    # student is the pair's AEC member, so tiny's re-training needs no teacher. Fixed before any of its
    # held-out rows were scored: its end, paired with aec-tiny-long2 (aec-pair3), is what ships as default.
    "aec-kd": ("aec", ["--recipe", "modern", "--db-repeat", "1,3", "--init-from",
                       "runs/accuracy/zoo-aec-long2/last.msgpack", "--teacher", "runs/accuracy/aec-pair2/last.msgpack",
                       "--distill-weight", "0.5", "--teacher-tta", "flip"], 20, "aec-long2"),
    # plain C3AE (36,345 values), one 60-epoch cosine cycle with All-Age-Faces three times per epoch: on the dev
    # split C3AE was 1.2 years ahead of AEC at 8 epochs (6.33 vs 7.55), and one cycle re-trains in about an
    # hour, where the AEC pair's chains take about four. Fixed before any of its held-out rows were scored:
    # its end ships as default, replacing aec-pair3, whatever it scores.
    "c3ae-long": ("c3ae", ["--recipe", "modern", "--db-repeat", "1,3"], 60, None),
}


# ensembles in one file (arch aec_pair): name -> the zoo candidates that are its members, in order. Decided
# before any pair was scored, on the literature's evidence that averaging independent runs lowers the error;
# the pair is reported whatever it scores.
PAIRS = {"aec-pair": ("aec-long2", "aec-tiny-long"), "aec-pair2": ("aec-long2", "aec-tiny-long2"),
         "aec-pair3": ("aec-kd", "aec-tiny-long2")}


def _teacher_pair(opts: list[str]) -> str | None:
    """The pair a candidate distils from (``--teacher runs/accuracy/<pair>/last.msgpack``), if any."""
    if "--teacher" not in opts:
        return None
    name = Path(opts[opts.index("--teacher") + 1]).parent.name
    return name if name in PAIRS else None


def sh(cmd: list[str], log: Path | None = None) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    if log is None:
        subprocess.run(list(map(str, cmd)), check=True, cwd=ROOT)
        return
    with open(log, "a") as f:
        subprocess.run(list(map(str, cmd)), check=True, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)


def prepare() -> None:
    """UTKFace (chips, 10 % hash hold-out) and AAF (detected with the zoo margin), plus their dev subsets."""
    DATA.mkdir(exist_ok=True)
    det = ["--detector", "yunet", "--detector-model", YUNET]
    if not (DATA / "utkface.npz").is_file():
        sh([*AC, "preprocess", "--db", "utkface", "--root", UTK_ROOT, "--holdout", "0.1",
            "--out", DATA / "utkface.npz", "--quiet"])
    if not (DATA / "aaf.npz").is_file():
        sh([*AC, "preprocess", "--db", "aaf", "--root", AAF_ROOT, "--method", "detect", "--margin", str(MARGIN),
            *det, "--out", DATA / "aaf.npz", "--quiet"])
    for name in ("utkface", "aaf"):
        dev = DATA / f"{name}-dev.npz"
        if not dev.is_file():
            _subset(DATA / f"{name}.npz", dev, split=0)


def _subset(src: Path, dst: Path, *, split: int) -> None:
    """The rows of ``src`` in ``split``, without the split column (so training splits them at random)."""
    with np.load(src) as z:
        keep = z["split"] == split
        arrays = {k: (z[k][keep] if z[k].ndim and len(z[k]) == len(keep) else z[k]) for k in z.files
                  if k != "split"}
    tmp = dst.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    side = json.loads(Path(f"{src}.json").read_text())
    side.update({"db": f"{side['db']}-dev", "count": int(keep.sum()), "split_names": None, "split_counts": None,
                 "derived_from": {"path": str(src), "split": split}})
    Path(f"{dst}.json").write_text(json.dumps(side, indent=1))
    os.replace(tmp, dst)


def _finished(run: Path, epochs: int) -> bool:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return False
    return len([ln for ln in lines if ln.strip()]) >= epochs and (run / "last.msgpack").is_file()


def _train(run: Path, model: str, dbs: list[Path], opts: list[str], epochs: int, seed: int) -> None:
    if _finished(run, epochs):
        return
    run.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*AC, "train", "--db", ",".join(map(str, dbs)), "--model", model, *opts, "--epochs", str(epochs),
           "--seed", str(seed), "--out", run, "--quiet", "--json"]
    cmd += ["--resume"] if (run / "config.json").is_file() else ["--exist-ok"]
    sh(cmd, log=run.parent / f"{run.name}.log")


def ablate(epochs: int, names: list[str] | None) -> None:
    for name in names or list(ABLATIONS):
        model, opts = ABLATIONS[name]
        _train(RUNS / f"ablate-{name}", model, [DATA / "utkface-dev.npz", DATA / "aaf-dev.npz"],
               [*opts, "--val-fraction", "0.15"], epochs, seed=0)


def zoo(names: list[str]) -> None:
    for name in names:
        model, opts, epochs, parent = CANDIDATES[name]
        if parent is not None and not _weights_in_place(parent):
            zoo([parent])
        teacher = _teacher_pair(opts)
        if teacher is not None:
            _assemble(teacher)
        _train(RUNS / f"zoo-{name}", model, [DATA / "utkface.npz", DATA / "aaf.npz"], opts, epochs, seed=0)


def _weights_in_place(name: str) -> bool:
    """Make runs/accuracy/zoo-<name>/last.msgpack exist from a shipped copy when the run itself is gone (the
    same arrays; ``--init-from`` reads only the weights). False when nothing holds them."""
    target = RUNS / f"zoo-{name}" / "last.msgpack"
    if target.is_file():
        return True
    try:
        source = _member_file(name)
    except SystemExit:
        return False
    if source != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return True


def train_commands(name: str) -> list[str]:
    """The shell commands that re-create zoo candidate ``name`` from the prepared data, in order."""
    model, opts, epochs, parent = CANDIDATES[name]
    before = train_commands(parent) if parent is not None else ["python benchmarks/accuracy.py prepare"]
    teacher = _teacher_pair(opts)
    if teacher is not None:
        before += [c for c in pair_commands(teacher) if c not in before]
    return before + [f"agecompact train --db data/utkface.npz,data/aaf.npz --model {model} {' '.join(opts)} "
                     f"--epochs {epochs} --seed 0 --out runs/accuracy/zoo-{name}"]


def pair_commands(name: str) -> list[str]:
    """Every member's commands (the data preparation once), then the assembly."""
    out: list[str] = []
    for m in PAIRS[name]:
        out += [c for c in train_commands(m) if c not in out]
    return out + [f"python benchmarks/accuracy.py pair --pair {name}"]


def _shipped_estimate(name: str) -> int | None:
    """The unloaded-CPU time estimate the manifest recorded for candidate ``name``'s chain (shipped on its
    own, or as a member of a pair), for when its run folder is gone."""
    shipped = _shipped_entry(name)
    if shipped is not None and "wall_seconds_alone_estimate" in shipped["training"]:
        return shipped["training"]["wall_seconds_alone_estimate"]
    for m in _zoo_models():
        for key in ("members_wall_seconds_alone_estimate", "chain_wall_seconds_alone_estimate"):
            if name in m["training"].get(key, {}):
                return m["training"][key][name]
    return None


def _chain(name: str) -> list[str]:
    """Candidate ``name`` and every run it starts from (for a pair: of each member), in order."""
    if name in PAIRS:
        return [c for m in PAIRS[name] for c in _chain(m)]
    parent = CANDIDATES[name][3]
    return (_chain(parent) if parent is not None else []) + [name]


def _zoo_models() -> list[dict]:
    return json.loads((ZOO / "manifest.json").read_text()).get("models", [])


def _shipped_entry(name: str) -> dict | None:
    """The manifest entry of the zoo file shipped from candidate ``name``'s own run (its chain ends there)."""
    return next((m for m in _zoo_models() if m["training"]["commands"][-1].endswith(f"--out runs/accuracy/zoo-{name}")),
                None)


def _eval(model: Path, args: list[str]) -> dict:
    out = subprocess.run([*AC, "eval", "--model", str(model), *map(str, args), "--json"], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def _detect_flip(row: dict, model: Path) -> None:
    """The predict pipeline with flip test-time augmentation, on both held-out sets."""
    for db, npz in (("utkface", DATA / "utkface.npz"), ("aaf", DATA / "aaf.npz")):
        via = _eval(model, ["--db", npz, "--split", "test", "--photos", "--detector", "yunet",
                            "--detector-model", YUNET, "--tta", "flip"])
        row[f"{db}_detect_flip"] = via["metrics"] | {"detection_rate": via["detection"]["rate"]}


def _held_out(row: dict, model: Path) -> None:
    """Chips, detection and flip columns of ``model`` on both held-out sets, into ``row``."""
    for db, npz in (("utkface", DATA / "utkface.npz"), ("aaf", DATA / "aaf.npz")):
        chips = _eval(model, ["--db", npz, "--split", "test"])
        row[f"{db}_chips"] = chips["metrics"]
        via = _eval(model, ["--db", npz, "--split", "test", "--photos", "--detector", "yunet",
                            "--detector-model", YUNET])
        row[f"{db}_detect"] = via["metrics"] | {"detection_rate": via["detection"]["rate"]}
        row[f"{db}_chips_flip"] = _eval(model, ["--db", npz, "--split", "test", "--tta", "flip"])["metrics"]
    _detect_flip(row, model)


def _member_file(name: str) -> Path:
    """Candidate ``name``'s last epoch: its run, else the zoo file shipped from that run, else the member of a
    shipped pair (the weights are the same arrays; only the header differs)."""
    run = RUNS / f"zoo-{name}" / "last.msgpack"
    if run.is_file():
        return run
    shipped = _shipped_entry(name)
    if shipped is not None:
        return ZOO / shipped["file"]
    for m in _zoo_models():
        members = m["training"].get("members", [])
        if name in members:
            return _extract_member(ZOO / m["file"], members.index(name), RUNS / f"zoo-{name}")
    raise SystemExit(f"error: no weights for {name}: run `python benchmarks/accuracy.py zoo --zoo {name}`")


def _extract_member(pair_file: Path, index: int, run: Path) -> Path:
    from agecompact.weights import modelfile

    meta, state = modelfile.read(pair_file)
    sharpen = meta.arch_kwargs.get("sharpen", (True, False))[index]
    member = modelfile.ModelMeta.from_dict(meta.to_dict() | {"arch": "aec" if sharpen else "aec_nosharpen",
                                                            "arch_kwargs": {}, "num_params": None})
    run.mkdir(parents=True, exist_ok=True)
    return modelfile.write(run / "last.msgpack", member, state["members"][str(index)])


def pair(names: list[str]) -> dict:
    """Join each pair's members into one ``aec_pair`` file (runs/accuracy/<pair>/last.msgpack) and measure it
    on the held-out rows."""

    results: dict = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in names:
        members = PAIRS[name]
        path = _assemble(name, force=True)
        rows = [results[f"zoo-{m}"] for m in members]
        row = {"model": "aec_pair", "recipe": rows[0]["recipe"], "members": list(members),
               "epochs": sum(_chain_epochs(m) for m in members), "train_seconds": _chain_seconds(name, results),
               "db": rows[0]["db"], "images_per_second": min(r["images_per_second"] for r in rows)}
        _held_out(row, path)
        from agecompact.api import load_model

        row["params"] = load_model(path).num_params
        results[name] = row
        _write_results(results)
    return results


def _assemble(name: str, *, force: bool = False) -> Path:
    """runs/accuracy/<pair>/last.msgpack from its members' last epochs (kept when it exists, unless
    ``force``); the same members give the same file."""
    from agecompact.models.aec import pair_state
    from agecompact.weights import modelfile

    out = RUNS / name / "last.msgpack"
    if out.is_file() and not force:
        return out
    read = [modelfile.read(_member_file(m)) for m in PAIRS[name]]
    metas = [meta for meta, _ in read]
    if len({(m.margin, m.color_order, m.input_size) for m in metas}) != 1:
        raise SystemExit(f"error: the members of {name} were not trained on the same crops")
    sharpen = [m.arch == "aec" for m in metas]
    meta = modelfile.ModelMeta.from_dict(metas[0].to_dict() | {"arch": "aec_pair", "num_params": None,
                                                               "arch_kwargs": {"sharpen": sharpen}, "metrics": {}})
    out.parent.mkdir(parents=True, exist_ok=True)
    return modelfile.write(out, meta, pair_state([state for _, state in read]))


def _write_results(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = results | {"_meta": {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_average": os.getloadavg(),
                                "protocol": __doc__.split("Stages")[0].strip()}}
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, RESULTS)


def evaluate(detect_flip: list[str] | None = None) -> dict:
    """Every finished run: dev validation (ablations) or held-out chips + detection (zoo candidates).
    ``detect_flip`` names earlier zoo rows to which the flip-TTA detection columns are added."""
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in detect_flip or []:
        if name in results and "utkface_detect_flip" not in results[name]:
            _detect_flip(results[name], RUNS / name / "last.msgpack")
    for run in sorted(RUNS.glob("*/")):
        if not (run / "last.msgpack").is_file() or not (run / "config.json").is_file():
            continue  # not a training run (a pair, or a member taken out of a shipped file)
        cfg = json.loads((run / "config.json").read_text())
        records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        if len(records) < cfg["epochs"] or run.name in results:
            continue  # still training, or already measured
        seconds = sum(r["epoch_seconds"] for r in records)
        row = {"model": cfg["model"], "recipe": cfg["recipe"], "epochs": len(records), "train_seconds": round(seconds),
               **({"teacher": f"{Path(cfg['teacher']).parent.name}, w {cfg['distill_weight']:g}, {cfg['teacher_tta']}"}
                  if cfg.get("teacher") else {}),
               "db": cfg["db"], "images_per_second": round(float(np.median([r["images_per_second"] for r in records])))}
        last = run / "last.msgpack"
        if run.name.startswith("ablate-"):
            row["dev_val_mae_last"] = records[-1]["val_mae"]
            row["augment_policy"] = cfg.get("augment_policy")
            if cfg.get("label_distribution", "two_point") != "two_point":
                row["label_distribution"] = f"{cfg['label_distribution']} σ {cfg['label_sigma']:g}"
            row["db_repeat"] = cfg.get("db_repeat")
            if cfg["model"].startswith("aec"):  # flip test-time augmentation, on the same dev rows
                for tta in ("none", "flip"):
                    parts = {Path(db).stem: _eval(run, ["--db", db, "--split", "val", "--tta", tta])["metrics"]
                             for db in cfg["db"].split(",")}
                    n = sum(m["count"] for m in parts.values())
                    row[f"dev_val_mae_{tta}"] = sum(m["mae"] * m["count"] for m in parts.values()) / n
                    row[f"dev_val_mae_{tta}_by_db"] = {k: m["mae"] for k, m in parts.items()}
        else:
            _held_out(row, last)
        from agecompact.api import load_model

        row["params"] = load_model(last).num_params
        results[run.name] = row
    _write_results(results)
    return json.loads(RESULTS.read_text())


ZOO = ROOT / "agecompact" / "zoo"
LICENCES = {"utkface": "UTKFace: non-commercial research only (https://susanqq.github.io/UTKFace/)",
            "aaf": "All-Age-Faces: non-commercial research only (https://github.com/JingchunCheng/All-Age-Faces-Dataset)"}
DESCRIPTIONS = {"default": "the default model (<= 50,000 values): plain C3AE, one 60-epoch cycle (36,345)",
                "tiny": "the most accurate with <= 20,000 values: AEC without its sharpen convolution (19,930)",
                "ssrnet-utk-aaf": "SSR-Net trained with the same data and recipe, for comparison"}


def _chain_epochs(name: str) -> int:
    """Epochs of candidate ``name`` including the runs it starts from."""
    _, _, epochs, parent = CANDIDATES[name]
    return epochs + (_chain_epochs(parent) if parent is not None else 0)


def _chain_seconds(name: str, doc: dict) -> int:
    """Training time of candidate ``name`` including the runs it starts from (of all members for a pair)."""
    if name in PAIRS:
        return sum(_chain_seconds(m, doc) for m in PAIRS[name])
    parent = CANDIDATES[name][3]
    return doc[f"zoo-{name}"]["train_seconds"] + (_chain_seconds(parent, doc) if parent is not None else 0)


def _chain_seconds_alone(name: str) -> int:
    """An estimate of the chain's time on an unloaded CPU: each run's fastest epoch times its epochs
    (the runs shared the CPU with other jobs for part of their time). Recorded in the manifest when shipped."""
    if name in PAIRS:
        return sum(_chain_seconds_alone(m) for m in PAIRS[name])
    shipped = _shipped_estimate(name)
    if shipped is not None and not (RUNS / f"zoo-{name}" / "metrics.jsonl").is_file():
        return shipped
    model, opts, epochs, parent = CANDIDATES[name]
    records = [json.loads(ln) for ln in (RUNS / f"zoo-{name}" / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    own = min(r["epoch_seconds"] for r in records) * len(records)
    return round(own) + (_chain_seconds_alone(parent) if parent is not None else 0)


def ship(pairs: list[tuple[str, str]]) -> None:
    """Copy zoo runs' last epoch (``(name, model)`` -> runs/accuracy/zoo-<model>) into agecompact/zoo/ with
    their manifest entry (command, data, metrics)."""
    import hashlib

    from agecompact.api import load_model
    from agecompact.zoo import probe_faces

    doc = json.loads(RESULTS.read_text())
    manifest = json.loads((ZOO / "manifest.json").read_text())
    models = {m["name"]: m for m in manifest.get("models", [])}
    for name, arch in pairs:
        members = PAIRS.get(arch)
        run = RUNS / (arch if members else f"zoo-{arch}")
        row = doc[arch if members else run.name]
        cfg = {"recipe": row["recipe"], "epochs": row["epochs"], "seed": 0} if members else \
            json.loads((run / "config.json").read_text())
        model = load_model(run / "last.msgpack")
        model.meta.name = f"agecompact-{name}"
        held_out = {k: row[k] for k in ("utkface_chips", "utkface_detect", "aaf_chips", "aaf_detect",
                                        "utkface_chips_flip", "aaf_chips_flip", "utkface_detect_flip",
                                        "aaf_detect_flip") if k in row}
        model.meta.metrics = {k: round(v["mae"], 3) for k, v in held_out.items()}
        model.meta.source = {"type": "zoo", "name": name, "recipe": cfg["recipe"], "epochs": cfg["epochs"],
                             "seed": cfg["seed"], "datasets": ["utkface", "aaf"]}
        if members:
            model.meta.source["members"] = list(members)
        out = ZOO / f"{name}.msgpack"
        model.save(out)
        data = out.read_bytes()
        assert len(data) <= 250_000, f"{out} is {len(data)} bytes"
        models[name] = {
            "name": name, "file": out.name, "arch": model.arch, "sha256": hashlib.sha256(data).hexdigest(),
            "description": DESCRIPTIONS.get(name, ""), "num_params": model.num_params, "bytes": len(data),
            "margin": model.meta.margin, "color_order": model.meta.color_order,
            "probe_ages": [round(float(a), 4) for a in load_model(out).predict(probe_faces())],
            "training": {
                "commands": pair_commands(arch) if members else train_commands(arch),
                "members": list(members or []),
                "exported": "last epoch (no epoch chosen on held-out rows)",
                "train_rows": {"utkface": "split 0 of preprocess --holdout 0.1 (19,240 faces)",
                               "aaf": "image sets/train.txt (1,600 faces, YuNet crops with margin 0.1)"},
                "wall_seconds": _chain_seconds(arch, doc),
                "wall_seconds_alone_estimate": _chain_seconds_alone(arch),
                **({"members_wall_seconds_alone_estimate": {m: _chain_seconds_alone(m) for m in members}}
                   if members else {}),
                # every run of the chain, so a later chain that starts from one of them can be estimated
                # after its run folder is gone
                "chain_wall_seconds_alone_estimate": {c: _chain_seconds_alone(c) for c in _chain(arch) if
                                                      (RUNS / f"zoo-{c}" / "metrics.jsonl").is_file()
                                                      or _shipped_estimate(c) is not None},
                "images_per_second": row["images_per_second"],
                "machine": "2-core x86-64 CPU, shared with other work",
            },
            "datasets": LICENCES,
            "held_out": held_out,
        }
    manifest["models"] = [models[k] for k in sorted(models)]
    manifest["note"] = ("Models trained by agecompact itself (benchmarks/accuracy.py). Held-out rows: UTKFace's "
                        "10 % file-name-hash hold-out and AAF's official val list, never used for any choice.")
    (ZOO / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _mae(m: dict | None) -> float | None:
    return None if m is None else m["mae"]


def _pair(a: float | None, b: float | None) -> str:
    return _num(a) if b is None else f"{_num(a)} ({_num(b)})"


def _found(m: dict | None, flip: dict | None = None) -> str:
    if m is None:
        return "—"
    return f"{m['mae']:.2f}" + ("" if flip is None else f" / {flip['mae']:.2f}") + f" ({m['detection_rate']:.1%})"


def _by_db(r: dict) -> str:
    parts = r.get("dev_val_mae_none_by_db")
    return "—" if not parts else " / ".join(_num(v) for v in parts.values())


def table(doc: dict) -> str:
    lines = ["| run | model | recipe | params | epochs | train time | dev val MAE (flip) | dev UTKFace / AAF | "
             "UTKFace chips (flip) | UTKFace via YuNet / flip (found) | AAF chips (flip) | AAF via YuNet / flip (found) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in doc.items():
        if name.startswith("_"):
            continue
        recipe = r["recipe"] + (f", {r['augment_policy']} aug" if r.get("augment_policy") else "")
        if r.get("db_repeat"):
            recipe += f", repeat {','.join(map(str, r['db_repeat']))}"
        if r.get("label_distribution"):
            recipe += f", {r['label_distribution']} labels"
        if r.get("teacher"):
            recipe += f", teacher {r['teacher']}"
        lines.append(f"| {name} | {r['model']} | {recipe} | {r['params']:,} | {r['epochs']} | "
                     f"{r['train_seconds'] / 60:.0f} min | {_pair(r.get('dev_val_mae_last'), r.get('dev_val_mae_flip'))} | "
                     f"{_by_db(r)} | {_pair(_mae(r.get('utkface_chips')), _mae(r.get('utkface_chips_flip')))} | "
                     f"{_found(r.get('utkface_detect'), r.get('utkface_detect_flip'))} | "
                     f"{_pair(_mae(r.get('aaf_chips')), _mae(r.get('aaf_chips_flip')))} | {_found(r.get('aaf_detect'), r.get('aaf_detect_flip'))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=["prepare", "ablate", "zoo", "pair", "evaluate", "table", "ship", "all"])
    ap.add_argument("--epochs", type=int, default=10, help="ablation epochs")
    ap.add_argument("--only", nargs="*", help="ablation names to run")
    ap.add_argument("--detect-flip", nargs="*", default=[], help="evaluate: zoo runs to add flip-TTA detection to")
    ap.add_argument("--zoo", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES), help="zoo candidates")
    ap.add_argument("--pair", nargs="*", default=list(PAIRS), choices=list(PAIRS), help="pairs to assemble")
    ap.add_argument("--ship", nargs="*", default=["default:c3ae-long", "tiny:aec-tiny-long2", "ssrnet-utk-aaf:ssrnet"],
                    help="zoo names to ship, as name:candidate")
    a = ap.parse_args()
    if a.stage in ("prepare", "all"):
        prepare()
    if a.stage in ("ablate", "all"):
        ablate(a.epochs, a.only)
    if a.stage in ("zoo", "all"):
        zoo(a.zoo)
    if a.stage in ("pair", "all"):
        pair(a.pair)
    if a.stage in ("evaluate", "all"):
        doc = evaluate(a.detect_flip)
        print(table(doc))
    if a.stage == "ship":
        ship([tuple(c.split(":")) for c in a.ship])
    if a.stage == "table":
        print(table(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
