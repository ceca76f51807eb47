"""The ASGI app behind ``agecompact serve``: ``POST /predict``, ``GET /health`` and an upload page at ``/``.

The model is loaded once (by the caller, into a :class:`Service`); requests share it, one prediction at
a time. Every failure is a JSON ``{"error": "one line"}`` with a 4xx status for bad requests, and a 500
without a traceback for anything unexpected.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from agecompact.serve.images import FORMATS, ImageRejected, decode_upload
from agecompact.serve.page import render_page

log = logging.getLogger("agecompact.serve")

MAX_UPLOAD_BYTES = 20 * 2**20
MAX_PIXELS = 64_000_000
RAW_TYPES = ("image/", "application/octet-stream")
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class UploadTooLarge(Exception):
    pass


class Service:
    """A loaded :class:`~agecompact.predict.Predictor` and the limits requests are held to."""

    def __init__(self, predictor, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS):
        self.predictor = predictor
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._lock = threading.Lock()  # detectors and engines are not shared between threads

    def info(self) -> dict[str, Any]:
        p = self.predictor
        info = {"model": p.age.model.name, "arch": p.age.model.arch, "detector": p.detector.name,
                "backend": p.backend, "max_upload_bytes": self.max_bytes, "max_pixels": self.max_pixels}
        if p.gender is not None:
            info["gender_model"] = p.gender.model.name
        return info

    def warm_up(self) -> None:
        """One forward pass so the first request does not pay for compilation."""
        import numpy as np

        from agecompact.faces.detector import Face

        blank = np.zeros((64, 64, 3), np.uint8)
        with self._lock:
            self.predictor.estimate([blank], [[Face((0.0, 0.0, 64.0, 64.0), 1.0)]])

    def predict(self, data: bytes, *, annotate: bool) -> dict[str, Any]:
        with self._lock:  # decoding is inside too: at most one full-size image in memory
            image = decode_upload(data, max_pixels=self.max_pixels)
            start = time.perf_counter()
            faces = self.predictor([image])[0]
            seconds = time.perf_counter() - start
            result: dict[str, Any] = {
                "width": int(image.shape[1]), "height": int(image.shape[0]), "count": len(faces),
                "faces": [face_json(f) for f in faces], "seconds": round(seconds, 4),
                "model": self.predictor.age.model.name, "detector": self.predictor.detector.name,
                "backend": self.predictor.backend,
            }
            if annotate:
                result["image"] = annotated_data_url(image, faces)
        return result


def face_json(face) -> dict[str, Any]:
    rec = {"face": face.index, "box": [round(v, 1) for v in face.box], "score": _number(face.score, 4),
           "age": _number(face.age, 2)}
    if face.gender is not None:
        rec["gender"] = face.gender
        rec["gender_score"] = _number(face.gender_score, 4)
    return rec


def _number(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None


def annotated_data_url(image, faces) -> str:
    import cv2

    from agecompact.predict.annotate import draw_faces

    ok, encoded = cv2.imencode(".jpg", draw_faces(image, faces), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("could not encode the annotated image")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_upload(request: Request, service: Service) -> bytes:
    """The image bytes of a multipart upload (field ``image``, or the only file) or of a raw body."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > service.max_bytes:
        raise UploadTooLarge
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=4, max_fields=16)
        try:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            chosen = [v for k, v in files if k == "image"] or [v for _, v in files]
            if not chosen:
                raise ImageRejected(400, "the form has no file: send the photo in a file field named 'image'")
            if len(chosen) > 1:
                raise ImageRejected(400, "send one image per request")
            return await chosen[0].read()
        finally:
            await form.close()
    if content_type.startswith(RAW_TYPES):
        return await request.body()
    shown = content_type or "none"
    raise ImageRejected(415, f"unsupported Content-Type {shown}: send multipart/form-data with a file field "
                             f"'image', or the {FORMATS} bytes as image/*")


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ImageRejected(400, f"query parameter {name}={value!r}: use 1 or 0")


def create_app(service: Service) -> Starlette:
    """The Starlette app serving ``service``; bodies over ``service.max_bytes`` are refused with 413."""

    async def predict(request: Request) -> Response:
        try:
            annotate = _flag(request, "annotate")
            data = await _read_upload(request, service)
            return JSONResponse(await run_in_threadpool(service.predict, data, annotate=annotate))
        except UploadTooLarge:
            return error(413, f"upload too large (limit {service.max_bytes:,} bytes)")
        except ImageRejected as e:
            return error(e.status, e.message)
        except HTTPException as e:  # malformed multipart bodies
            return error(e.status_code, _one_line(e.detail))
        except Exception as e:  # noqa: BLE001 - the service must answer, not crash, on anything
            log.error("error: predict failed: %s: %s", type(e).__name__, _one_line(str(e)))
            return error(500, f"internal error ({type(e).__name__}); see the server's log")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", **service.info()})

    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(service.info()))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return error(status, _one_line(getattr(exc, "detail", "")) or "error")

    app = Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
                Route("/", page, methods=["GET"])],
        exception_handlers={HTTPException: http_error},
    )
    return LimitBody(app, service.max_bytes)


class LimitBody:
    """ASGI wrapper: reading more than ``limit`` body bytes raises :class:`UploadTooLarge` in the reader
    (chunked uploads have no Content-Length to check up front)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise UploadTooLarge
            return message

        await self.app(scope, limited_receive, send)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())
