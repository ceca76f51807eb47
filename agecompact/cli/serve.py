"""``agecompact serve``: an HTTP service with ``POST /predict``, ``GET /health`` and an upload page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors
from agecompact.cli._choices import BACKEND_METAVAR, Detector, backend_option

SERVE_MISSING = "`agecompact serve` needs the serve extra: pip install 'agecompact[serve]'"


@app.command()
@handle_errors
def serve(
    model: Annotated[str, typer.Option(
        "--model", "-m", metavar="MODEL", help="Age model: a model file, a run folder, a Keras .h5 or a "
        "pretrained name, as for predict.")] = "default",
    gender_model: Annotated[str | None, typer.Option(
        "--gender-model", metavar="MODEL", help="Also estimate gender with this SSR-Net gender model.")] = None,
    host: Annotated[str, typer.Option(
        metavar="ADDRESS", help="Address to listen on; 0.0.0.0 makes the service reachable from other "
        "machines (it has no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8000,
    detector: Annotated[Detector, typer.Option(case_sensitive=False,
        help="auto (YuNet if its model is available, else Haar), yunet, haar, or none for "
        "already-cropped faces.")] = Detector.auto,
    detector_model: Annotated[Path | None, typer.Option(
        help="YuNet ONNX file (default: the one `agecompact fetch yunet` stores).")] = None,
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum YuNet detection score.")] = 0.8,
    backend: Annotated[str, typer.Option(metavar=BACKEND_METAVAR, callback=backend_option,
        help="Inference backend: auto (JAX on an accelerator, else onnxruntime if installed, else JAX), "
        "jax or onnx.")] = "auto",
    max_upload_mb: Annotated[float, typer.Option(
        "--max-upload-mb", min=0.001, help="Largest accepted upload in MiB (larger ones get 413).")] = 20.0,
    max_megapixels: Annotated[float, typer.Option(
        "--max-megapixels", min=0.001, help="Largest accepted image in megapixels, read from the file "
        "header before decoding (larger ones get 413).")] = 64.0,
    access_log: Annotated[bool, typer.Option(help="Log one line per request on stderr.")] = True,
) -> None:
    """Serve a model over HTTP: POST /predict (an image, as a multipart file field 'image' or as the raw
    body, answered with JSON faces; ?annotate=1 adds the annotated photo as a data URL), GET /health,
    and an upload page at /.

    The model is loaded once, when the service starts. Bad uploads get a 4xx answer with a one-line
    JSON reason ({"error": ...}). Stop with Ctrl-C.

    Example:

        agecompact serve --model ssrnet-wiki --port 8000

        curl -F image=@photo.jpg http://127.0.0.1:8000/predict
    """
    import importlib.util

    from agecompact.errors import NotAvailableError

    if any(importlib.util.find_spec(m) is None for m in ("starlette", "uvicorn", "multipart")):
        raise NotAvailableError(SERVE_MISSING)

    from agecompact.api import load_model
    from agecompact.console import err_console
    from agecompact.faces.detector import create_detector
    from agecompact.inference import resolve_backend
    from agecompact.predict import Predictor
    from agecompact.serve.app import Service, create_app
    from agecompact.serve.server import bind
    from agecompact.serve.server import serve as run_server

    resolve_backend(backend)  # an unavailable backend fails before the model is loaded
    sock = bind(host, port)  # a taken port fails before the model is loaded, too
    try:
        age_model = load_model(model, lazy=True)
        sex_model = load_model(gender_model, lazy=True) if gender_model else None
        kind = "yunet" if detector == "auto" and detector_model is not None else detector
        face_detector = create_detector(kind, model_path=detector_model, score_threshold=min_score)
        predictor = Predictor(age_model, detector=face_detector, gender_model=sex_model, backend=backend,
                              batch_size=8, min_score=min_score)
        service = Service(predictor, max_bytes=max(1, round(max_upload_mb * 2**20)),
                          max_pixels=max(1, round(max_megapixels * 1e6)))
        service.warm_up()
    except BaseException:
        sock.close()
        raise

    def ready(url: str) -> None:
        if detector == "auto" and face_detector.name == "haar":
            err_console.print("note: YuNet model not found (run `agecompact fetch yunet` or pass "
                              "--detector-model); using OpenCV's Haar cascade", markup=False, soft_wrap=True)
        err_console.print(f"serving {age_model.name} on {url} (detector {face_detector.name}, backend "
                          f"{predictor.backend}); Ctrl-C to stop", markup=False, soft_wrap=True)

    with predictor:
        try:
            run_server(create_app(service), sock, access_log=access_log, on_ready=ready)
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal way to stop
            pass
    err_console.print("stopped", markup=False)
