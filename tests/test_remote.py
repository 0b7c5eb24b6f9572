"""Remote storage through loaders.files, against real servers on 127.0.0.1: moto's S3 server, a
GCS emulator (gcp-storage-emulator, through gcsfs) and an HTTP file server with range requests
(tests/servers.py); the tests that hold for any object store run on both stores. TFRecord and CSV datasets, the TF1
readers, the atomic writer, globs, index files beside remote files, exactly-once over DataLoader
workers, memory://, the command line, and one clear error naming the URL for each bad input."""
from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest
import torch
import zstandard
from torch.utils.data import DataLoader

import loaders
from loaders import files
from loaders.errors import DataLossError, NotFoundError, OutOfRangeError
from loaders.tfrecord import (
    FixedLenFeature, IndexedTFRecordDataset, TFRecordDataset, TFRecordWriter, index_path, iter_records,
)

from servers import FileServer, start_gcs, start_moto

FEATURES = {"file": FixedLenFeature([], torch.int64), "n": FixedLenFeature([], torch.int64)}
CODECS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zst": zstandard.compress}
CSV = "a,b,label\n" + "".join(f"{i},{i * 0.5},{i % 3}\n" for i in range(300))


@pytest.fixture(scope="module")
def s3():
    """(storage_options, s3fs filesystem, bucket URL) of a fresh bucket on a moto server."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server, options = start_moto()
    fs = fsspec.filesystem("s3", **options)
    fs.mkdir("data")
    yield options, fs, "s3://data"
    server.stop()


@pytest.fixture(scope="module")
def gcs():
    """(storage_options, gcsfs filesystem, bucket URL) of the bucket of a GCS emulator."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    server, options = start_gcs()
    yield options, fsspec.filesystem("gs", **options), "gs://data"
    server.stop()


@pytest.fixture(params=["s3", "gcs"])
def store(request):
    """Each object store in turn: moto's S3 and the GCS emulator, as ``(options, fs, bucket URL)``."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def http():
    server = FileServer()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(files, "RETRY_BACKOFF_S", 0.001)


def prefix(base: str) -> str:
    """A fresh 'folder' under ``base`` for one test."""
    return f"{base}/{uuid.uuid4().hex[:8]}"


def write_tfrecords(folder: str, storage_options=None, files_=3, per_file=20, index=False) -> list[str]:
    urls = []
    for f in range(files_):
        url = f"{folder}/part-{f}.tfrecord"
        with TFRecordWriter(url, index=index, storage_options=storage_options) as writer:
            for n in range(per_file + f):
                writer.write({"file": f, "n": n})
        urls.append(url)
    return urls


def pairs(items) -> list[tuple[int, int]]:
    return [(int(item["file"]), int(item["n"])) for item in items]


def expected(files_=3, per_file=20) -> list[tuple[int, int]]:
    return [(f, n) for f in range(files_) for n in range(per_file + f)]


def test_tfrecord_dataset_reads_a_remote_glob(store):
    options, _, bucket = store
    folder = prefix(bucket)
    write_tfrecords(folder, options)
    dataset = TFRecordDataset(f"{folder}/*.tfrecord", FEATURES, storage_options=options, cycle_length=1)
    assert dataset.files == [f"{folder}/part-{f}.tfrecord" for f in range(3)]
    assert pairs(dataset) == expected()


def test_indexed_dataset_finds_the_index_beside_the_remote_file_and_reads_byte_ranges(store):
    options, fs, bucket = store
    folder = prefix(bucket)
    with_index, without = write_tfrecords(folder, options, files_=2, index=True)[:2]
    fs.rm(index_path(without)[5:])
    dataset = IndexedTFRecordDataset([with_index, without], FEATURES, storage_options=options)
    fs.invalidate_cache()
    assert fs.exists(index_path(without)[5:])  # created beside the remote file
    assert len(dataset) == 41
    assert pairs(dataset[i] for i in (40, 0, 19, 20)) == [(1, 20), (0, 0), (0, 19), (1, 0)]
    assert pairs(pickle.loads(pickle.dumps(dataset))[i] for i in range(len(dataset))) == expected(2)


def test_one_indexed_remote_file_split_over_two_workers_by_byte_range_is_read_exactly_once(store):
    options, _, bucket = store
    (url,) = write_tfrecords(prefix(bucket), options, files_=1, per_file=500, index=True)
    loader = DataLoader(TFRecordDataset(url, FEATURES, storage_options=options), batch_size=None, num_workers=2,
                        multiprocessing_context="fork")
    got = pairs(loader)
    assert sorted(got) == expected(1, 500) and len(got) == 500


@pytest.mark.slow
def test_remote_csv_over_two_spawned_workers_is_read_exactly_once(store):
    options, fs, bucket = store
    folder = prefix(bucket)
    fs.pipe({f"{folder}/plain.csv"[5:]: CSV.encode(), f"{folder}/packed.csv.gz"[5:]: gzip.compress(CSV.encode())})
    dataset = CSVDataset_of(f"{folder}/*.csv*", options, chunk_bytes=500)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    rows = [int(features[0]) for features, _ in loader]
    assert sorted(rows) == sorted(list(range(300)) * 2)


def CSVDataset_of(urls, options, **kwargs):
    return loaders.CSVDataset(urls, label_column="label", storage_options=options, **kwargs)


@pytest.mark.parametrize("suffix", ["", *CODECS])
def test_csv_dataset_reads_plain_and_compressed_remote_files(store, suffix):
    options, fs, bucket = store
    url = f"{prefix(bucket)}/heart.csv{suffix}"
    data = CSV.encode()
    fs.pipe(url[5:], CODECS[suffix](data) if suffix else data)
    dataset = CSVDataset_of(url, options, chunk_bytes=700)
    rows = [(features.tolist(), int(label)) for features, label in dataset]
    assert rows == [([float(i), i * 0.5], i % 3) for i in range(300)]


def test_compressed_local_csv_is_one_range_read_whole_by_one_of_two_workers(tmp_path):
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    (tmp_path / "b.csv.zst").write_bytes(zstandard.compress(CSV.encode()))
    dataset = loaders.CSVDataset(str(tmp_path / "*.csv.*"), label_column="label", chunk_bytes=100)
    assert dataset._splits() == [(str(tmp_path / "a.csv.gz"), 0, None), (str(tmp_path / "b.csv.zst"), 0, None)]
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork")
    assert sorted(int(features[0]) for features, _ in loader) == sorted(list(range(300)) * 2)


def test_a_truncated_gzip_csv_is_a_data_loss_error_naming_the_file(tmp_path):
    packed = gzip.compress(CSV.encode())
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataLossError, match=r"cut\.csv\.gz: truncated gzip stream at uncompressed byte offset \d+"):
        list(loaders.CSVDataset(str(tmp_path / "cut.csv.gz"), label_column="label", infer_rows=10))
    with pytest.raises(DataLossError, match=r"cut\.csv\.gz: truncated gzip stream"):
        read_all_lines(loaders.TextLineReader(), [str(tmp_path / "cut.csv.gz")])


@pytest.mark.parametrize("suffix", CODECS)
def test_concatenated_compressed_streams_read_whole_and_a_cut_one_names_the_codec(tmp_path, suffix):
    """Two streams of one codec back to back read as their concatenation through small reads (the
    output bounded by each read, bz2/xz holding input between reads); cut short, the file is a
    DataLossError naming it, the codec and the uncompressed byte offset."""
    data = (CSV * 400).encode()
    packed = CODECS[suffix](data) * 2
    path = tmp_path / f"twice.csv{suffix}"
    path.write_bytes(packed)
    with files.open_input(str(path), compression="infer") as handle:
        assert b"".join(iter(lambda: handle.read(1000), b"")) == data * 2
    path.write_bytes(packed[:-10])
    codec = files.codec_of(str(path))
    with pytest.raises(DataLossError, match=rf"twice\.csv\{suffix}: truncated {codec} stream at uncompressed byte "
                                            r"offset \d+: expected the end-of-stream marker$"):
        with files.open_input(str(path), compression="infer") as handle:
            handle.read()


def read_all_lines(reader, urls):
    """Every record ``reader`` reads from a one-epoch queue of ``urls``."""
    queue = loaders.string_input_producer(urls, num_epochs=1, shuffle=False)
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    out = []
    try:
        while True:
            out.append(reader.read(queue))
    except OutOfRangeError:
        return out
    finally:
        coord.request_stop()
        coord.join(threads)


def test_tf1_readers_read_remote_urls_from_a_filename_queue(store):
    options, fs, bucket = store
    folder = prefix(bucket)
    fs.pipe({f"{folder}/lines.txt.gz"[5:]: gzip.compress(b"head\none\ntwo\n"), f"{folder}/fixed.bin"[5:]: b"abcdef"})
    (record_url,) = write_tfrecords(folder, options, files_=1, per_file=2)

    lines = read_all_lines(loaders.TextLineReader(skip_header_lines=1, storage_options=options), [f"{folder}/lines.txt.gz"])
    assert lines == [(f"{folder}/lines.txt.gz:2".encode(), b"one"), (f"{folder}/lines.txt.gz:3".encode(), b"two")]
    fixed = read_all_lines(loaders.FixedLengthRecordReader(3, storage_options=options), [f"{folder}/fixed.bin"])
    assert [value for _, value in fixed] == [b"abc", b"def"]
    whole = read_all_lines(loaders.WholeFileReader(storage_options=options), [f"{folder}/fixed.bin"])
    assert whole == [(f"{folder}/fixed.bin".encode(), b"abcdef")]
    records = read_all_lines(loaders.TFRecordReader(storage_options=options), [record_url])
    framed = [(f"{record_url}:{offset}".encode(), data) for offset, data in iter_records(record_url, storage_options=options)]
    assert records == framed and len(records) == 2 and framed[1][0].endswith(b":45")  # a 29-byte Example, framed
    with pytest.raises(NotFoundError, match="no such file"):
        read_all_lines(loaders.WholeFileReader(storage_options=options), [f"{folder}/absent.bin"])


def test_writer_exception_leaves_nothing_on_the_store(store):
    options, fs, bucket = store
    folder = prefix(bucket)
    with pytest.raises(RuntimeError, match="boom"):
        with TFRecordWriter(f"{folder}/out.tfrecord", index=True, storage_options=options) as writer:
            writer.write(b"half")
            assert not fs.exists(f"{folder}/out.tfrecord"[5:])  # nothing under the final name while writing
            raise RuntimeError("boom")
    fs.invalidate_cache()
    assert fs.find(folder[5:]) == []
    with TFRecordWriter(f"{folder}/out.tfrecord", storage_options=options) as writer:
        writer.write(b"whole")
    fs.invalidate_cache()
    assert fs.find(folder[5:]) == [f"{folder}/out.tfrecord"[5:]]


def test_memory_filesystem_round_trip():
    folder = prefix("memory://loaders")
    write_tfrecords(folder, files_=2, index=True)
    assert pairs(TFRecordDataset(f"{folder}/*.tfrecord", FEATURES, cycle_length=1)) == expected(2)
    assert pairs(IndexedTFRecordDataset(f"{folder}/part-1.tfrecord", FEATURES)) == expected(2)[20:]
    with fsspec.open(f"{folder}/t.csv.bz2", "wb") as f:
        f.write(bz2.compress(CSV.encode()))
    assert len(list(loaders.CSVDataset(f"{folder}/t.csv.bz2", label_column="label"))) == 300


def test_http_streaming_and_indexed_access_through_range_requests(http, tmp_path):
    write_tfrecords(str(tmp_path), files_=1, per_file=50, index=True)
    for name in ("part-0.tfrecord", "part-0.tfrecord.tfindex"):
        http.files[f"/plain/{name}"] = (tmp_path / name).read_bytes()
    url = http.url("/plain/part-0.tfrecord")
    assert pairs(TFRecordDataset(url, FEATURES)) == expected(1, 50)
    indexed = IndexedTFRecordDataset(url, FEATURES)
    assert len(indexed) == 50 and pairs([indexed[49], indexed[3]]) == [(0, 49), (0, 3)]


def test_sequential_reads_fetch_each_block_once_in_block_size_ranges(http, monkeypatch):
    monkeypatch.setattr(files, "BLOCK_SIZE", 4000)
    http.files["/blocks/data.bin"] = data = os.urandom(15000)
    del http.gets[:]
    with files.open_input(http.url("/blocks/data.bin")) as handle:
        assert handle.read() == data
    assert [(start, stop) for path, start, stop in http.gets if path == "/blocks/data.bin"] == [
        (0, 4000), (4000, 8000), (8000, 12000), (12000, 15000)]


def test_http_globs_are_listed_from_the_servers_index_pages(http, tmp_path):
    write_tfrecords(str(tmp_path), files_=2)
    for f in range(2):
        http.files[f"/listed/part-{f}.tfrecord"] = (tmp_path / f"part-{f}.tfrecord").read_bytes()
    http.files["/listed/notes.txt"] = b"not a record"
    dataset = TFRecordDataset(http.url("/listed/*.tfrecord"), FEATURES, cycle_length=1)
    assert dataset.files == [http.url(f"/listed/part-{f}.tfrecord") for f in range(2)]
    assert pairs(dataset) == expected(2)
    http.files["/query/part.tfrecord"] = (tmp_path / "part-0.tfrecord").read_bytes()
    assert files.expand_paths(http.url("/query/part.tfrecord?sig=1")) == [http.url("/query/part.tfrecord?sig=1")]
    with pytest.raises(FileNotFoundError, match=r"/unlisted/\*\.tfrecord: no object matches this pattern$"):
        TFRecordDataset(http.url("/unlisted/*.tfrecord"))


@pytest.mark.slow
def test_index_command_line_writes_the_index_beside_an_s3_file(s3):
    options, fs, bucket = s3
    (url,) = write_tfrecords(prefix(bucket), options, files_=1)
    endpoint = options["client_kwargs"]["endpoint_url"]
    done = subprocess.run(
        [sys.executable, "-m", "loaders.tfrecord.index", url, "--storage-option", "key=testing",
         "--storage-option", "secret=testing", "--storage-option", f"client_kwargs.endpoint_url={endpoint}"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    assert fs.cat(index_path(url)[5:]).count(b"\n") == 20


def test_storage_options_flags_nest_dotted_keys_and_read_json_values():
    assert files.parse_storage_options(["anon=true", "client_kwargs.endpoint_url=http://h:1", "token=abc"]) == {
        "anon": True, "client_kwargs": {"endpoint_url": "http://h:1"}, "token": "abc"}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        files.parse_storage_options(["anon"])


def test_missing_object_and_bucket_name_the_url(store):
    options, _, bucket = store
    scheme = bucket.split("://")[0]
    with pytest.raises(FileNotFoundError, match=rf"^{scheme}://data/absent\.tfrecord: no such file or object$"):
        TFRecordDataset(f"{bucket}/absent.tfrecord", storage_options=options)
    with pytest.raises(FileNotFoundError, match=rf"^{scheme}://no-such-bucket/x\.tfrecord: no such file or object$"):
        TFRecordDataset(f"{scheme}://no-such-bucket/x.tfrecord", storage_options=options)


def test_a_glob_matching_nothing_names_the_pattern(store):
    options, _, bucket = store
    with pytest.raises(FileNotFoundError, match=rf"^{bucket}/\*\.nothing: no object matches this pattern$"):
        loaders.CSVDataset(f"{bucket}/*.nothing", storage_options=options)


def test_an_unreachable_endpoint_names_the_url():
    closed = FileServer()
    port = closed.server_address[1]
    closed.stop()  # a port where nothing listens
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
               "config_kwargs": {"retries": {"max_attempts": 1}}}
    with pytest.raises(files.StorageUnavailable, match=r"^s3://data/x\.tfrecord: .*cannot reach the endpoint"):
        TFRecordDataset("s3://data/x.tfrecord", storage_options=options)
    with pytest.raises(files.StorageUnavailable, match=rf"^http://127\.0\.0\.1:{port}/x\.csv: .*cannot reach"):
        loaders.CSVDataset(f"http://127.0.0.1:{port}/x.csv")


def test_http_403_is_a_permission_error_naming_the_url(http):
    url = http.url("/forbidden/x.tfrecord")
    with pytest.raises(PermissionError, match=rf"^{url}: access denied .*HTTP 403"):
        TFRecordDataset(url)


def test_missing_credentials_name_the_url(s3, monkeypatch, tmp_path):
    options, _, bucket = s3
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    anonymous = {"client_kwargs": options["client_kwargs"], "skip_instance_cache": True}
    with pytest.raises(PermissionError, match=r"^s3://data/x\.tfrecord: no credentials found"):
        TFRecordDataset(f"{bucket}/x.tfrecord", storage_options=anonymous)


def test_a_missing_backend_names_the_extra():
    """Run where gcsfs cannot be imported (a fresh interpreter with it blocked), installed here or not."""
    code = ("import sys; sys.modules['gcsfs'] = None\n"
            "from loaders.tfrecord import TFRecordDataset\n"
            "try:\n    TFRecordDataset('gs://b/x.tfrecord')\n"
            "except ImportError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gs://b/x.tfrecord: reading gs:// needs gcsfs: pip install torch-loaders-style[gcs]"


def test_fsspec_config_reaches_the_filesystem_without_storage_options(s3, monkeypatch):
    options, _, bucket = s3
    folder = prefix(bucket)
    write_tfrecords(folder, options, files_=1)
    monkeypatch.setitem(fsspec.config.conf, "s3", {**options, "skip_instance_cache": True})
    assert pairs(TFRecordDataset(f"{folder}/part-0.tfrecord", FEATURES)) == expected(1)


def test_file_urls_are_local_paths(tmp_path):
    (url,) = write_tfrecords(f"file://{tmp_path}", files_=1)
    assert (tmp_path / "part-0.tfrecord").is_file()
    dataset = TFRecordDataset(url, FEATURES)
    assert dataset.files == [str(tmp_path / "part-0.tfrecord")] and pairs(dataset) == expected(1)


def test_convert_writes_shards_and_labels_to_the_store(store, tmp_path):
    from PIL import Image

    from loaders.tfrecord.convert import convert

    options, fs, bucket = store
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (4, 3), label == "cat" and "red" or "blue").save(tmp_path / label / "a.png")
    out = prefix(bucket)
    paths = convert(tmp_path, out, shards=2, index=True, storage_options=options)
    assert paths == [f"{out}/data-0000{i}-of-00002.tfrecord" for i in range(2)]
    assert fs.cat(f"{out}/labels.txt"[5:]) == b"cat\ndog\n"
    labels = [int(r["image/class/label"]) for r in TFRecordDataset(paths, storage_options=options, cycle_length=1)]
    assert sorted(labels) == [0, 1] and all(fs.exists(index_path(p)[5:]) for p in paths)


def test_convert_reads_the_image_folder_from_the_store(store, tmp_path, caplog):
    from PIL import Image

    from loaders.tfrecord.convert import convert

    options, fs, bucket = store
    photos = prefix(bucket)
    colours = {"cat/a.png": "red", "cat/deep/b.png": "green", "dog/c.png": "blue"}
    for name, colour in colours.items():
        image = io.BytesIO()
        Image.new("RGB", (4, 3), colour).save(image, format="PNG")
        fs.pipe(f"{photos}/{name}"[5:], image.getvalue())
    fs.pipe({f"{photos}/README"[5:]: b"stray", f"{photos}/dog/notes.txt"[5:]: b"not an image"})
    with caplog.at_level(logging.WARNING):
        paths = convert(photos, tmp_path, shards=1, storage_options=options)
    assert "1 files outside class folders" in caplog.text and "dog/notes.txt: not an image suffix" in caplog.text
    assert (tmp_path / "labels.txt").read_text() == "cat\ndog\n"
    records = {r["image/filename"][0].decode(): (int(r["image/class/label"]), Image.open(io.BytesIO(r["image/encoded"][0])))
               for r in TFRecordDataset(paths)}
    assert sorted(records) == ["a.png", "b.png", "c.png"]
    assert {name: (label, image.getpixel((0, 0))) for name, (label, image) in records.items()} == {
        "a.png": (0, (255, 0, 0)), "b.png": (0, (0, 128, 0)), "c.png": (1, (0, 0, 255))}
    with pytest.raises(FileNotFoundError, match=rf"^{bucket}/nothing-here: no such folder"):
        convert(f"{bucket}/nothing-here", tmp_path / "none", storage_options=options)
