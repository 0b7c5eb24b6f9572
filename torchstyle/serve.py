"""The local web page: ``torchstyle serve`` (or ``python -m torchstyle.serve``), a Starlette app.

The page (``static/index.html``, plain HTML and JavaScript) uploads a content and a style image
or picks bundled examples, sets the size, steps, style weight, coarse-to-fine start and colors,
and starts a job; the job's events come back over server-sent events: its place in the queue,
each step's losses (plotted) and every few steps a JPEG snapshot of the picture as it forms,
then the result (PNG) and its trace (JSON) to download. The optimization is
:class:`~torchstyle.StyleTransfer`'s own; its per-step callback posts the events and ends a
cancelled job. Jobs run one at a time on the device (:mod:`torchstyle.jobs`).

Safe by default: binds 127.0.0.1; requests from other hosts' pages (Origin) or under other
host names (DNS rebinding) are refused; uploads are size- and pixel-limited, decoded by Pillow
in memory with decompression bombs refused; no client-supplied name reaches a path (examples
are looked up by name in a table); each browser gets a random cookie and sees and cancels only
its own jobs (limits and decoding: :mod:`torchstyle.uploads`). Every bad request gets a JSON
``{"error": ...}`` that the page shows.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import io
import json
import logging
import secrets
import sys
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import anyio
from PIL import Image, ImageOps
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from . import StyleTransfer, __version__
from .images import tensor_to_image
from .jobs import FINISHED, Cancelled, Job, JobQueue
from .scales import scale_sizes, scale_steps
from .uploads import BadRequest, Limits, decode_upload, form_number, mib, read_form
from .vgg import DEFAULT_WEIGHTS, WeightsError

__all__ = ["create_app", "main", "Limits"]

logger = logging.getLogger(__name__)

COOKIE = "torchstyle_client"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"  # in a checkout
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
COLORS = ("style", "original", "histogram")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class WebApp:
    """The routes: the page, the examples, and the jobs of the client that owns them."""

    def __init__(self, transfer: StyleTransfer, limits: Limits, examples: Optional[Path],
                 snapshot_every: int) -> None:
        self.transfer, self.limits, self.snapshot_every = transfer, limits, snapshot_every
        folder = examples if examples is not None and examples.is_dir() else None
        self.examples = {path.name: path for path in sorted(folder.iterdir())
                         if path.suffix.lower() in IMAGE_SUFFIXES} if folder else {}
        self.queue = JobQueue(self._run)

    # --- the job itself: StyleTransfer with a callback that posts events -----------------

    def _run(self, job: Job) -> None:
        """Stylize ``job`` on the worker thread; steps, snapshots and the result become events."""
        options = job.work["options"]
        sizes = scale_sizes(options["size"], options["min_size"])
        total = sum(scale_steps(len(sizes), options["num_steps"]))
        job.post("started", {"total_steps": total, "scales": sizes})
        rows: list[dict] = []
        started = time.perf_counter()

        def on_step(step: int, losses: dict, image: Any) -> None:
            if job.cancel_requested.is_set():
                raise Cancelled
            job.step = step
            rows.append({"step": step, "size": list(image.shape[-2:]), **losses})
            job.post("step", rows[-1])
            if step % self.snapshot_every == 0 or step == total:
                job.post("snapshot", {"step": step, "image": _jpeg_data_url(image)})

        try:
            if job.cancel_requested.is_set():
                raise Cancelled
            result = self.transfer(job.work["content"], job.work["style"], callback=on_step, **options)
            buffer = io.BytesIO()
            result.save(buffer, format="PNG")
            job.result = buffer.getvalue()
        finally:
            job.trace = {"torchstyle": __version__, "inputs": job.work["inputs"], "options": options,
                         "seconds": round(time.perf_counter() - started, 3), "steps": rows}

    # --- requests ------------------------------------------------------------------------

    def _client(self, request: Request) -> Optional[str]:
        """The client's token from its cookie, if it has one."""
        return request.cookies.get(COOKIE)

    def _own(self, request: Request) -> Job:
        """The job named in the path, if this client owns it; else 404 (others' jobs do not exist)."""
        name = request.path_params["job"]
        job, client = self.queue.jobs.get(name), self._client(request)
        if job is None or client is None or not secrets.compare_digest(job.owner, client):
            raise BadRequest(f"no job {name[:40]} for this client", 404)
        return job

    @staticmethod
    def _same_origin(request: Request) -> None:
        """Refuse a POST sent by a page of another site (browsers send its Origin)."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise BadRequest(f"cross-origin request from {origin[:80]} refused", 403)

    async def index(self, request: Request) -> Response:
        """The page; a browser without a client cookie gets one."""
        page = resources.files("torchstyle").joinpath("static/index.html").read_text()
        response = HTMLResponse(page)
        if self._client(request) is None:
            _set_client(response)
        return response

    async def config(self, request: Request) -> Response:
        """What the page offers: the examples, the colors, the limits, the device."""
        return JSONResponse({"examples": list(self.examples), "colors": COLORS,
                             "min_side": self.transfer.vgg.min_side,
                             "limits": dataclasses.asdict(self.limits), "device": str(self.transfer.device)})

    async def example(self, request: Request) -> Response:
        """An example image, looked up by name in the table (never joined to a path)."""
        path = self.examples.get(request.path_params["name"])
        if path is None:
            raise BadRequest(f"no example named {request.path_params['name'][:40]!r}", 404)
        return FileResponse(path)

    async def _picture(self, form: FormData, role: str) -> tuple[Image.Image, str]:
        """The ``role`` ("content"/"style") image: an upload, else the example named in the form."""
        upload = form.get(role)
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            if upload.size is not None and upload.size > self.limits.upload_bytes:
                raise BadRequest(f"the {role} image is {mib(upload.size)}; the limit is "
                                 f"{mib(self.limits.upload_bytes)}", 413)
            data = await upload.read()
            image = await anyio.to_thread.run_sync(decode_upload, data, f"{role} image", self.limits.pixels)
            return image, f"upload ({len(data)} bytes, {image.width}x{image.height} px)"
        name = form.get(f"{role}_example")
        if isinstance(name, str) and name:
            if name not in self.examples:
                raise BadRequest(f"no example named {name[:40]!r} for the {role} image")
            with Image.open(self.examples[name]) as image:
                return ImageOps.exif_transpose(image), f"example {name}"
        raise BadRequest(f"choose a {role} image: upload one or pick an example")

    async def submit(self, request: Request) -> Response:
        """Queue a job from the form; 201 with its id and place, or a JSON error."""
        self._same_origin(request)
        client = self._client(request) or secrets.token_urlsafe(24)
        if self.queue.waiting(client) >= self.limits.jobs_per_client:
            raise BadRequest(f"{self.limits.jobs_per_client} of your jobs are waiting or running; "
                             f"wait for one or cancel one", 429)
        form = await read_form(request, 2 * self.limits.upload_bytes + 2**20)
        try:
            content, content_from = await self._picture(form, "content")
            style, style_from = await self._picture(form, "style")
            options = self._options(form)
        finally:
            await form.close()
        job = Job(client, {"content": content, "style": style, "options": options,
                           "inputs": {"content": content_from, "style": style_from}})
        self.queue.submit(job)
        response = JSONResponse(job.summary(), status_code=201)
        if self._client(request) is None:
            _set_client(response, client)
        return response

    def _options(self, form: FormData) -> dict[str, Any]:
        """The transfer's options from the form, each checked against the limits."""
        limits, min_side = self.limits, self.transfer.vgg.min_side
        size = form_number(form, "size", int, 256, min_side, limits.size)
        min_size = form_number(form, "min_size", int, 0, 0, limits.size)
        if 0 < min_size < min_side:
            raise BadRequest(f"min_size must be 0 (one scale) or at least {min_side}, got {min_size}")
        colors = form.get("colors") or "style"
        if colors not in COLORS:
            raise BadRequest(f"colors must be one of {', '.join(COLORS)}, got {str(colors)[:40]!r}")
        return {"size": size, "num_steps": form_number(form, "steps", int, 100, 1, limits.steps),
                "style_weight": form_number(form, "style_weight", float, 1e6, 0, 1e12),
                "min_size": min_size or None, "original_colors": colors == "original",
                "color_transfer": "histogram" if colors == "histogram" else None}

    async def jobs(self, request: Request) -> Response:
        """This client's jobs (none for a client without a cookie)."""
        client = self._client(request)
        mine = [job.summary() for job in list(self.queue.jobs.values()) if client and job.owner == client]
        return JSONResponse({"jobs": mine})

    async def job(self, request: Request) -> Response:
        """One of this client's jobs: state, place, step, error."""
        return JSONResponse(self._own(request).summary())

    async def cancel(self, request: Request) -> Response:
        """Cancel one of this client's jobs (queued: now; running: at its next step)."""
        self._same_origin(request)
        job = self._own(request)
        self.queue.cancel(job)
        return JSONResponse(job.summary())

    async def events(self, request: Request) -> Response:
        """The job's events as SSE, from after ``Last-Event-ID`` when a reader reconnects."""
        job = self._own(request)
        last = request.headers.get("last-event-id", "")
        start = int(last) + 1 if last.isdigit() else 0

        async def stream():
            index = start
            while True:
                await job.wait(index)
                for index, kind, data in job.events_after(index):
                    yield ServerSentEvent(data=json.dumps(data), event=kind, id=str(index))
                    if kind in FINISHED:
                        return
                index += 1

        return EventSourceResponse(stream(), ping=10)

    async def result(self, request: Request) -> Response:
        """The finished picture as a PNG download (409 until the job is done)."""
        job = self._own(request)
        if job.result is None:
            raise BadRequest(f"job {job.id} has no result: it is {job.state}", 409)
        return Response(job.result, media_type="image/png", headers={
            "Content-Disposition": f'attachment; filename="torchstyle-{job.id}.png"'})

    async def trace(self, request: Request) -> Response:
        """Options and per-step losses as a JSON download, once the job has ended."""
        job = self._own(request)
        if job.state not in FINISHED or job.trace is None:
            raise BadRequest(f"job {job.id} has no trace yet: it is {job.state}", 409)
        return Response(json.dumps({**job.trace, "state": job.state}, indent=1),
                        media_type="application/json", headers={
                            "Content-Disposition": f'attachment; filename="torchstyle-{job.id}.json"'})


def _set_client(response: Response, client: Optional[str] = None) -> None:
    """Give the browser its random client token: HttpOnly, never sent by other sites' pages."""
    response.set_cookie(COOKIE, client or secrets.token_urlsafe(24), httponly=True, samesite="strict")


def _jpeg_data_url(image: Any) -> str:
    """A ``(1, 3, H, W)`` tensor as a ``data:image/jpeg`` URL (quality 85)."""
    buffer = io.BytesIO()
    tensor_to_image(image[:1]).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


async def _json_error(request: Request, exc: Exception) -> Response:
    """Every error as ``{"error": message}``; an unexpected one is logged and is a 500."""
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    logger.exception("error serving %s", request.url.path)
    return JSONResponse({"error": f"internal error: {exc}"}, status_code=500)


def create_app(transfer: StyleTransfer, *, limits: Limits = Limits(),
               examples: Optional[Path] = EXAMPLES, snapshot_every: int = 5,
               allowed_hosts: Optional[Sequence[str]] = None) -> Starlette:
    """The web app over ``transfer``; its job worker runs while the app does (lifespan).

    ``examples``: a folder of images offered by name. ``snapshot_every``: steps between two
    pictures sent to the page. ``allowed_hosts``: the Host names accepted (None: any).
    """
    web = WebApp(transfer, limits, examples, snapshot_every)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        web.queue.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(web.queue.stop)

    routes = [Route("/", web.index), Route("/api/config", web.config),
              Route("/api/examples/{name}", web.example),
              Route("/api/jobs", web.submit, methods=["POST"]), Route("/api/jobs", web.jobs),
              Route("/api/jobs/{job}", web.job), Route("/api/jobs/{job}/events", web.events),
              Route("/api/jobs/{job}/cancel", web.cancel, methods=["POST"]),
              Route("/api/jobs/{job}/result", web.result), Route("/api/jobs/{job}/trace", web.trace)]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _json_error, Exception: _json_error})
    app.state.web = web
    return app


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``torchstyle serve``."""
    from .run import _count, _Parser  # the CLI's one-line usage errors

    parser = _Parser(prog="torchstyle serve",
                     description="A local web page: style transfer live in the browser.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=_count(0), default=8000, help="(default: %(default)s)")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="a local VGG-19 state_dict (default: torchvision's IMAGENET1K_V1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, ...")
    parser.add_argument("--examples", type=Path, default=EXAMPLES, metavar="DIR",
                        help="folder of images offered as examples (default: the bundled ones)")
    parser.add_argument("--max-size", type=_count(16), default=Limits.size, metavar="PX",
                        help="largest long edge a job may ask (default: %(default)s)")
    parser.add_argument("--max-steps", type=_count(1), default=Limits.steps, metavar="N",
                        help="most steps a job may ask (default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=_count(1), default=Limits.upload_bytes // 2**20,
                        metavar="MB", help="largest upload, per image (default: %(default)s)")
    parser.add_argument("--max-megapixels", type=_count(1), default=Limits.pixels // 10**6,
                        metavar="MP", help="most pixels of an uploaded image (default: %(default)s)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Load the network, then serve until interrupted; 1 with one line when it cannot start."""
    import uvicorn

    args = build_parser().parse_args(argv)
    if args.examples != EXAMPLES and not args.examples.is_dir():
        print(f"torchstyle serve: error: examples folder {args.examples} does not exist", file=sys.stderr)
        return 1
    try:
        transfer = StyleTransfer(weights=args.weights or DEFAULT_WEIGHTS, device=args.device)
    except (WeightsError, ValueError, OSError) as exc:
        print(f"torchstyle serve: error: {exc}", file=sys.stderr)
        return 1
    limits = Limits(upload_bytes=args.max_upload_mb * 2**20, pixels=args.max_megapixels * 10**6,
                    size=args.max_size, steps=args.max_steps)
    hosts = list(LOOPBACK) if args.host in LOOPBACK else None  # DNS rebinding cannot reach it
    app = create_app(transfer, limits=limits, examples=args.examples, allowed_hosts=hosts)
    print(f"torchstyle serve: open http://{args.host}:{args.port}/ ({transfer.device})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
