"""torchstyle serve through Starlette's test client: jobs, their events, cancel, the queue, limits.

The network is a seeded random VGG (``weights=None``, two style layers and one content layer) on
the CPU, and the pictures are small, so a job of a few steps takes a fraction of a second; a job
of many steps stands for a long one and is cancelled.
"""
from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from polling import until
from torchstyle import StyleTransfer
from torchstyle.jobs import Job, JobQueue
from torchstyle.run import main
from torchstyle.serve import Limits, create_app
from torchstyle.vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures

REPO = Path(__file__).resolve().parents[1]
SMALL = {"style_layers": ["conv1_1", "conv2_1"], "content_layers": ["conv2_2"]}
LIMITS = Limits(upload_bytes=256 * 1024, pixels=100_000, size=128, steps=100_000, jobs_per_client=4)
EXAMPLES = {"content_example": "landscape.jpg", "style_example": "swirls.jpg"}
LONG = {**EXAMPLES, "size": "32", "steps": "100000"}  # runs until cancelled


@pytest.fixture(scope="module")
def app():
    torch.manual_seed(0)
    transfer = StyleTransfer(weights=None, device="cpu", **SMALL)
    return create_app(transfer, limits=LIMITS, snapshot_every=2)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:  # runs the lifespan: the job worker
        client.get("/")  # the page gives this client its cookie
        yield client


def _png(width: int, height: int, seed: int = 0, noise: bool = True) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255 if noise else 1, (height, width, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _huge_png(side: int = 20000) -> bytes:
    """A valid ``side x side`` 1-bit PNG of zeros, built row by row: about 50 KB, never in memory."""
    row, packer = b"\0" * (1 + (side + 7) // 8), zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _submit(client, fields=None, files=None, expect: int = 201) -> dict:
    response = client.post("/api/jobs", data=fields or {**EXAMPLES, "size": "32", "steps": "4"}, files=files)
    assert response.status_code == expect, response.text
    return response.json()


def _events(client, job_id: str, headers=None) -> list[tuple[int, str, dict]]:
    """``(id, kind, data)`` of every event of the job's SSE stream, which ends with the job."""
    events, kind, ident = [], None, None
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("id: "):
                ident = int(line[len("id: "):])
            elif line.startswith("data: "):
                events.append((ident, kind, json.loads(line[len("data: "):])))
    return events


def _running(client, job_id: str) -> dict:
    """Wait until the job has taken at least one step; its summary."""
    return until(lambda: (lambda s: s["state"] == "running" and s["step"] > 0 and s)(
        client.get(f"/api/jobs/{job_id}").json()))


def test_page_gives_a_client_cookie_and_config_lists_examples_and_limits(app):
    fresh = TestClient(app)
    page = fresh.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "EventSource" in page.text
    assert "torchstyle_client" in page.cookies and "httponly" in page.headers["set-cookie"].lower()
    config = fresh.get("/api/config").json()
    assert config["examples"] == ["landscape.jpg", "stripes.jpg", "swirls.jpg"]
    assert config["limits"]["size"] == 128 and config["colors"] == ["style", "original", "histogram"]
    assert fresh.get("/api/examples/landscape.jpg").content == (REPO / "examples/images/landscape.jpg").read_bytes()
    assert fresh.get("/api/examples/..%2Frun.py").status_code == 404


def test_job_streams_its_place_steps_snapshots_and_end_then_gives_result_and_trace(client):
    job = _submit(client, files={"content": ("photo.png", _png(40, 30), "image/png")},
                  fields={"style_example": "stripes.jpg", "size": "32", "steps": "5", "colors": "histogram"})
    events = _events(client, job["id"])
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "done"
    assert [d["step"] for _, k, d in events if k == "step"] == [1, 2, 3, 4, 5]
    assert [d["step"] for _, k, d in events if k == "snapshot"] == [2, 4, 5]  # every 2nd and the last
    assert [ident for ident, _, _ in events] == list(range(len(events)))
    snapshot = next(d for _, k, d in events if k == "snapshot")["image"]
    assert snapshot.startswith("data:image/jpeg;base64,")
    steps = [d for _, k, d in events if k == "step"]
    assert steps[0]["size"] == [24, 32] and steps[-1]["total"] < steps[0]["total"]
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert f'filename="torchstyle-{job["id"]}.png"' in result.headers["content-disposition"]
    with Image.open(io.BytesIO(result.content)) as picture:
        assert picture.size == (32, 24)
    trace = client.get(f"/api/jobs/{job['id']}/trace").json()
    assert trace["state"] == "done" and [row["step"] for row in trace["steps"]] == [1, 2, 3, 4, 5]
    assert trace["options"]["color_transfer"] == "histogram" and trace["options"]["num_steps"] == 5
    assert trace["inputs"] == {"content": "upload (%d bytes, 40x30 px)" % len(_png(40, 30)),
                               "style": "example stripes.jpg"}


def test_a_late_reader_gets_every_step_but_only_the_last_picture_and_can_resume(client):
    job = _submit(client, fields={**EXAMPLES, "size": "32", "steps": "6"})
    first = _events(client, job["id"])
    again = _events(client, job["id"])
    assert [d["step"] for _, k, d in again if k == "snapshot"] == [6]
    assert [d["step"] for _, k, d in again if k == "step"] == [1, 2, 3, 4, 5, 6]
    resumed = _events(client, job["id"], headers={"Last-Event-ID": str(first[4][0])})
    assert resumed[0][0] > first[4][0] and resumed[-1][1] == "done"


def test_coarse_to_fine_and_original_colors_run_every_scale(client):
    job = _submit(client, fields={**EXAMPLES, "size": "64", "steps": "2", "min_size": "32",
                                  "colors": "original"})
    events = _events(client, job["id"])
    started = next(d for _, k, d in events if k == "started")
    assert started["scales"] == [32, 45, 64] and started["total_steps"] == 6
    assert sorted({tuple(d["size"]) for _, k, d in events if k == "step"}) == [(24, 32), (34, 45), (48, 64)]
    assert events[-1][1] == "done"


def test_cancel_ends_a_running_job_at_its_next_step_and_keeps_its_trace(client):
    job = _submit(client, fields=LONG)
    _running(client, job["id"])
    assert client.get(f"/api/jobs/{job['id']}/trace").status_code == 409  # not finished yet
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
    events = _events(client, job["id"])
    assert events[-1][1] == "cancelled" and events[-1][2]["step"] < 100_000
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "cancelled"
    missing = client.get(f"/api/jobs/{job['id']}/result")
    assert missing.status_code == 409 and "cancelled" in missing.json()["error"]
    trace = client.get(f"/api/jobs/{job['id']}/trace").json()
    assert trace["state"] == "cancelled" and len(trace["steps"]) == events[-1][2]["step"]


def test_queued_jobs_learn_their_place_and_move_up_one_job_at_a_time(client):
    first = _submit(client, fields=LONG)
    _running(client, first["id"])
    second, third = _submit(client, fields=LONG), _submit(client)
    assert (second["position"], third["position"]) == (1, 2)
    assert client.get(f"/api/jobs/{third['id']}").json()["state"] == "queued"
    ours = {job["id"]: job for job in client.get("/api/jobs").json()["jobs"]}
    assert ours[first["id"]]["state"] == "running" and ours[second["id"]]["position"] == 1
    client.post(f"/api/jobs/{second['id']}/cancel")  # a queued job leaves the queue at once
    assert _events(client, second["id"])[-1] == (1, "cancelled", {"step": 0})
    assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 1
    assert client.get(f"/api/jobs/{first['id']}").json()["state"] == "running"  # one at a time
    client.post(f"/api/jobs/{first['id']}/cancel")
    events = _events(client, third["id"])
    assert [d["position"] for _, k, d in events if k == "queued"] == [2, 1]
    assert events[-1][1] == "done"
    assert _events(client, first["id"])[-1][1] == "cancelled"


def test_another_client_can_neither_see_nor_cancel_a_job(app, client):
    job = _submit(client, fields=LONG)
    stranger, anonymous = TestClient(app), TestClient(app)
    stranger.get("/")
    for other in (stranger, anonymous):
        for path in ("", "/events", "/result", "/trace"):
            response = other.get(f"/api/jobs/{job['id']}{path}")
            assert response.status_code == 404 and "no job" in response.json()["error"]
        assert other.post(f"/api/jobs/{job['id']}/cancel").status_code == 404
        assert other.get("/api/jobs").json() == {"jobs": []}
    # two browsers at once: the stranger's job queues behind ours and runs once ours is cancelled
    theirs = _submit(stranger)
    assert theirs["position"] == 1 and client.get(f"/api/jobs/{theirs['id']}").status_code == 404
    client.post(f"/api/jobs/{job['id']}/cancel")
    assert _events(stranger, theirs["id"])[-1][1] == "done"
    assert _events(client, job["id"])[-1][1] == "cancelled"


@pytest.mark.parametrize("fields, files, status, message", [
    ({"style_example": "swirls.jpg"}, {"content": ("x.png", b"not an image at all", "image/png")},
     400, "the content image is not an image file"),
    ({"style_example": "swirls.jpg"}, {"content": ("big.png", _huge_png(), "image/png")},
     413, "the content image is too large to decode safely"),
    ({"style_example": "swirls.jpg"}, {"content": ("wide.png", _png(400, 400, noise=False), "image/png")},
     413, "the content image is 400x400 px (0.16 megapixels); the limit is 0.1 megapixels"),
    ({"style_example": "swirls.jpg"}, {"content": ("heavy.png", b"\0" * 300_000, "image/png")},
     413, "the content image is 0.286 MiB; the limit is 0.25 MiB"),
    ({"style_example": "swirls.jpg"}, {"content": ("cut.png", _png(40, 30)[:200], "image/png")},
     400, "the content image is damaged or truncated"),
    ({**EXAMPLES, "size": "5000"}, None, 400, "size must be between 2 and 128, got 5000"),
    ({**EXAMPLES, "steps": "many"}, None, 400, "steps must be a whole number, got 'many'"),
    ({**EXAMPLES, "style_weight": "nan"}, None, 400, "style_weight must be between 0 and 1e+12"),
    ({**EXAMPLES, "colors": "purple"}, None, 400, "colors must be one of style, original, histogram"),
    ({**EXAMPLES, "min_size": "1"}, None, 400, "min_size must be 0 (one scale) or at least 2"),
    ({"content_example": "landscape.jpg"}, None, 400, "choose a style image"),
    ({"content_example": "../run.py", "style_example": "swirls.jpg"}, None, 400,
     "no example named '../run.py' for the content image"),
])
def test_bad_input_gets_one_clear_json_error_and_the_server_goes_on(client, fields, files, status, message):
    response = client.post("/api/jobs", data=fields, files=files)
    assert response.status_code == status and message in response.json()["error"], response.text
    assert _events(client, _submit(client)["id"])[-1][1] == "done"


def test_malformed_and_oversized_requests_get_json_errors(client):
    broken = client.post("/api/jobs", content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nbody",
                         headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert broken.status_code == 400 and broken.json()["error"]
    not_a_form = client.post("/api/jobs", json={"size": 32})
    assert not_a_form.status_code == 400 and "choose a content image" in not_a_form.json()["error"]
    huge = client.post("/api/jobs", content=b"\0" * (2 * LIMITS.upload_bytes + 2**20 + 1),
                       headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert huge.status_code == 413 and "the request is" in huge.json()["error"]
    chunks = (b"\0" * 2**16 for _ in range(2 * LIMITS.upload_bytes // 2**16 + 32))  # no length
    streamed = client.post("/api/jobs", content=chunks,
                           headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert streamed.status_code == 413 and "the request is over" in streamed.json()["error"]
    assert client.get("/api/jobs/nope").status_code == 404
    assert _events(client, _submit(client)["id"])[-1][1] == "done"


def test_too_many_waiting_jobs_per_client_is_refused(client):
    jobs = [_submit(client, fields=LONG) for _ in range(LIMITS.jobs_per_client)]
    refused = client.post("/api/jobs", data=LONG)
    assert refused.status_code == 429 and "4 of your jobs" in refused.json()["error"]
    for job in reversed(jobs):
        client.post(f"/api/jobs/{job['id']}/cancel")
    assert all(_events(client, job["id"])[-1][1] == "cancelled" for job in jobs)


def test_pages_of_other_sites_and_other_host_names_are_refused():
    torch.manual_seed(0)
    app = create_app(StyleTransfer(weights=None, device="cpu", **SMALL), limits=LIMITS,
                     allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as local:
        posted = local.post("/api/jobs", data=EXAMPLES, headers={"origin": "http://evil.example"})
        assert posted.status_code == 403 and "cross-origin" in posted.json()["error"]
        assert local.post("/api/jobs", data={**EXAMPLES, "size": "32", "steps": "2"},
                          headers={"origin": "http://127.0.0.1:8000"}).status_code == 201
    rebound = TestClient(app, base_url="http://evil.example")
    assert rebound.get("/").status_code == 400


def test_a_failing_job_posts_its_error_and_the_queue_goes_on():
    def run(job: Job) -> None:
        if job.work["fail"]:
            raise MemoryError("a 9000x9000 px image needs about 80 GiB")
        job.step = 1

    queue = JobQueue(run)
    queue.start()
    try:
        failing, fine = Job("me", {"fail": True}), Job("me", {"fail": False})
        queue.submit(failing)
        queue.submit(fine)
        until(lambda: fine.state == "done")
    finally:
        queue.stop()
    assert failing.state == "failed" and failing.error == "a 9000x9000 px image needs about 80 GiB"
    assert [event[1:] for event in failing.events_after(0)][-1] == ("failed", {"error": failing.error})
    assert fine.events_after(0)[-1][1:] == ("done", {"step": 1})


def test_serve_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["serve", "--weights", str(tmp_path / "missing.pth"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("torchstyle serve: error:") and "missing.pth" in err and err.count("\n") == 1
    assert main(["serve", "--examples", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err == f"torchstyle serve: error: examples folder {tmp_path / 'nowhere'} does not exist\n"
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--port", "http"])
    assert exit_.value.code == 2 and "--port" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_python_m_torchstyle_serve_listens_on_127_0_0_1(tmp_path):
    torch.manual_seed(0)
    layers = [*DEFAULT_STYLE_LAYERS, *DEFAULT_CONTENT_LAYERS]
    torch.save(VGGFeatures(layers, weights=None).state_dict(), tmp_path / "vgg.pth")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "torchstyle.serve", "--port", str(port),
                               "--weights", str(tmp_path / "vgg.pth"), "--device", "cpu"],
                              cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                              stderr=subprocess.PIPE, text=True)
    try:
        def config():
            assert server.poll() is None, server.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=5) as reply:
                    return json.load(reply)
            except OSError:
                return None
        assert until(config)["device"] == "cpu"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"open http://127.0.0.1:{port}/" in err
