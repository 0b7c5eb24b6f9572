"""TFRecord framing: golden bytes from TensorFlow, CRC32C vectors, compression, corruption detection."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

import loaders.tfrecord.format as format_module
from loaders.errors import DataLossError, InvalidArgumentError
from loaders.files import RangeReader
from loaders.tfrecord import TFRecordCompressionType, TFRecordOptions, TFRecordWriter, tf_record_iterator
from loaders.tfrecord.format import (
    HEADER_SIZE, compression_for, encode_record, iter_records, mask_crc, masked_crc32c, read_record_at,
)

# Golden files written by TensorFlow 2.21 (tensorflow-cpu, separate venv):
#   with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type=C)) as w:
#       for r in [b"", b"a", b"hello tfrecord"]: w.write(r)
RECORDS = [b"", b"a", b"hello tfrecord"]
OFFSETS = [0, 16, 33]
GOLDEN = {
    "": (
        b"\x00\x00\x00\x00\x00\x00\x00\x00)\x03\x98\x07\xd8\xea\x82\xa2"
        b"\x01\x00\x00\x00\x00\x00\x00\x00\x01u\xdeAaxn\xe4("
        b"\x0e\x00\x00\x00\x00\x00\x00\x00\xc5\xe5i?hello tfrecord\x9f[v\""
    ),
    "GZIP": (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03c`\x80\x00M\xe6\x19\xec7^5-b\x84\xf2\x19K\xef9&V\xe4=\xd1"
        b"\xe0\x83\n\x1c}\x9ai\x9f\x91\x9a\x93\x93\xafP\x92V\x94\x9a\x9c_\x942?\xbaL\t\x00\x10p\x155?\x00\x00\x00"
    ),
    "ZLIB": (
        b"x\x9cc`\x80\x00M\xe6\x19\xec7^5-b\x84\xf2\x19K\xef9&V\xe4=\xd1\xe0\x83\n\x1c}\x9ai\x9f\x91\x9a\x93"
        b"\x93\xafP\x92V\x94\x9a\x9c_\x942?\xbaL\t\x00\xb8~\x11\x1a"
    ),
}
SUFFIX = {"": "", "GZIP": ".gz", "ZLIB": ".zlib"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, params=["C", "Python"])
def framing(request, monkeypatch):
    """Every test runs with the C framing loop (when built) and with the pure-Python one."""
    if request.param == "Python":
        monkeypatch.setattr(format_module, "_framing", None)
    elif format_module._framing is None:
        pytest.skip("the C framing loop is not built (pip install -e . builds it where there is a compiler)")
    return request.param


def test_crc32c_spec_vectors():
    # RFC 3720 appendix B.4 and TensorFlow's crc32c_test.cc.
    assert masked_crc32c(b"") == mask_crc(0)
    import crc32c

    assert crc32c.crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c.crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_mask_matches_tensorflow_golden_headers():
    # Masked CRCs read off TensorFlow's golden file: 8 zero length bytes, then the empty payload.
    assert masked_crc32c(bytes(8)) == 0x07980329
    assert masked_crc32c(b"") == 0xA282EAD8
    assert masked_crc32c(b"a") == 0x28E46E78
    crc = 0x12345678
    assert mask_crc(crc) != crc and mask_crc(mask_crc(crc)) != crc


@pytest.mark.parametrize("compression", ["", "GZIP", "ZLIB"])
def test_writer_output_is_byte_identical_to_tensorflow(tmp_path, compression):
    path = tmp_path / f"three.tfrecord{SUFFIX[compression]}"
    with TFRecordWriter(path, TFRecordOptions(compression)) as writer:
        for record in RECORDS:
            writer.write(record)
    assert path.read_bytes() == GOLDEN[compression]


@pytest.mark.parametrize("compression", ["", "GZIP", "ZLIB"])
def test_reads_tensorflow_golden_files_with_offsets(tmp_path, compression):
    path = tmp_path / f"golden.tfrecord{SUFFIX[compression]}"
    path.write_bytes(GOLDEN[compression])
    assert list(iter_records(path)) == list(zip(OFFSETS, RECORDS))
    assert list(tf_record_iterator(path)) == RECORDS


def test_encode_record_is_the_framing():
    assert b"".join(encode_record(r) for r in RECORDS) == GOLDEN[""]


def test_empty_files(tmp_path):
    for name in ("empty.tfrecord", "empty.tfrecord.gz", "empty.tfrecord.zlib"):
        (tmp_path / name).write_bytes(b"")
        assert list(iter_records(tmp_path / name)) == []
    with TFRecordWriter(tmp_path / "none.tfrecord.gz"):
        pass
    assert gzip.decompress((tmp_path / "none.tfrecord.gz").read_bytes()) == b""
    assert list(iter_records(tmp_path / "none.tfrecord.gz")) == []


@pytest.mark.parametrize("suffix", ["", ".gz", ".zlib"])
def test_round_trip_large_and_zero_byte_records(tmp_path, suffix):
    records = [b"", bytes(range(256)) * 9000, b"\x00", b"x" * 70_000, b""]  # one is > the 1 MiB read buffer
    path = tmp_path / f"big.tfrecord{suffix}"
    with TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    got = list(iter_records(path))
    assert [data for _, data in got] == records
    offsets = [0]
    for record in records[:-1]:
        offsets.append(offsets[-1] + len(record) + 16)
    assert [offset for offset, _ in got] == offsets


def test_concatenated_gzip_members(tmp_path):
    path = tmp_path / "two.tfrecord.gz"
    path.write_bytes(gzip.compress(encode_record(b"first")) + gzip.compress(encode_record(b"second")))
    assert list(iter_records(path)) == [(0, b"first"), (21, b"second")]


def test_compression_argument_forms(tmp_path):
    assert compression_for("a.tfrecord") == ""
    assert compression_for("a.tfrecord.gz") == "GZIP"
    assert compression_for("a.zlib") == "ZLIB"
    assert compression_for("a.gz", "") == ""
    assert compression_for("a", "gzip") == "GZIP"
    assert compression_for("a", TFRecordCompressionType.ZLIB) == "ZLIB"
    assert compression_for("a.gz", TFRecordOptions(TFRecordCompressionType.NONE)) == ""
    assert TFRecordOptions.get_compression_type_string(TFRecordOptions("GZIP")) == "GZIP"
    with pytest.raises(InvalidArgumentError, match="unknown compression 'BZIP2'"):
        compression_for("a", "BZIP2")
    path = tmp_path / "plain-name"
    path.write_bytes(zlib.compress(encode_record(b"z")))
    assert list(tf_record_iterator(path, TFRecordOptions(TFRecordCompressionType.ZLIB))) == [b"z"]


def _three_records(tmp_path):
    path = tmp_path / "data.tfrecord"
    path.write_bytes(GOLDEN[""])
    return path, bytearray(GOLDEN[""])


def test_flipped_payload_byte_names_file_and_record_offset(tmp_path):
    path, data = _three_records(tmp_path)
    data[33 + 12 + 3] ^= 0x01  # inside "hello tfrecord", the record at offset 33
    path.write_bytes(bytes(data))
    with pytest.raises(DataLossError, match=rf"^{path}: corrupted record data at byte offset 33: expected masked CRC32C"):
        list(iter_records(path))
    assert [r for _, r in iter_records(path, verify=False)][2] == b"helmo tfrecord"


def test_flipped_length_byte_names_record_offset(tmp_path):
    path, data = _three_records(tmp_path)
    data[16] ^= 0x04  # the length of the record at offset 16
    path.write_bytes(bytes(data))
    with pytest.raises(DataLossError, match=rf"^{path}: corrupted record length at byte offset 16:"):
        list(iter_records(path))


def test_flipped_data_crc_byte(tmp_path):
    path, data = _three_records(tmp_path)
    data[-1] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(DataLossError, match="corrupted record data at byte offset 33"):
        list(iter_records(path))


@pytest.mark.parametrize(
    "cut, message",
    [(5, "truncated record header at byte offset 0"), (14, "truncated record at byte offset 0"),
     (16 + 13, "truncated record at byte offset 16"), (len(GOLDEN[""]) - 1, "truncated record at byte offset 33")],
)
def test_cut_file_raises_with_offset(tmp_path, cut, message):
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(GOLDEN[""][:cut])
    with pytest.raises(DataLossError, match=message):
        list(iter_records(path))
    with pytest.raises(DataLossError, match=message.split(" at")[0]):
        list(iter_records(path, verify=False))


def test_huge_length_is_refused_not_allocated(tmp_path):
    length = struct.pack("<Q", 1 << 60)
    header = length + struct.pack("<I", masked_crc32c(length))  # a valid CRC: only the size can tell
    path = tmp_path / "huge.tfrecord"
    path.write_bytes(encode_record(b"ok") + header + b"tiny")
    records = iter_records(path)
    assert next(records) == (0, b"ok")
    with pytest.raises(DataLossError, match=rf"truncated record at byte offset 18: expected {(1 << 60) + 16} bytes"):
        next(records)


def test_huge_length_in_compressed_stream_fails_as_truncated(tmp_path):
    length = struct.pack("<Q", 1 << 60)
    path = tmp_path / "huge.tfrecord.gz"
    path.write_bytes(gzip.compress(length + struct.pack("<I", masked_crc32c(length)) + b"tiny"))
    with pytest.raises(DataLossError, match="truncated record at byte offset 0"):
        list(iter_records(path))


# A GZIP file of concatenated members: one record header claiming 2**40 bytes, then 256 MiB of
# zeros (16 KiB compressed per 16 MiB), far less than claimed. Read with the loop named in argv.
BOMB_READER = """
import resource, struct, sys, zlib
import loaders.tfrecord.format as format_module
from loaders.errors import DataLossError
path, loop = sys.argv[1], sys.argv[2]
if loop == "Python":
    format_module._framing = None
def member(data):
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()
length = struct.pack("<Q", 1 << 40)
zeros = member(bytes(16 << 20))
with open(path, "wb") as f:
    f.write(member(length + struct.pack("<I", format_module.masked_crc32c(length))) + zeros * 16)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    list(format_module.iter_records(path))
except DataLossError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_huge_length_in_a_compressed_stream_is_checked_within_a_bounded_buffer(tmp_path, framing):
    path = tmp_path / "bomb.tfrecord.gz"
    done = subprocess.run([sys.executable, "-c", BOMB_READER, str(path), framing], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    message, growth_mib = done.stdout.splitlines()
    assert message == (f"{path}: truncated record at byte offset 0: expected {(1 << 40) + 16} bytes "
                       f"(header, {1 << 40} data bytes, CRC), found {(256 << 20) + 12}")
    assert int(growth_mib) < 64  # the stream held 256 MiB; the old reader buffered all of it


def test_records_larger_than_the_trusted_length_are_read_from_compressed_streams(tmp_path, monkeypatch):
    monkeypatch.setattr(format_module, "_TRUSTED_LENGTH", 1 << 16)  # so that 3 MiB goes through the check
    records = [b"before", os.urandom(3 << 20), b"after", bytes(5 << 20), b""]
    for compression, suffix in [("GZIP", ".gz"), ("ZLIB", ".zlib")]:
        path = tmp_path / f"large.tfrecord{suffix}"
        with TFRecordWriter(path, TFRecordOptions(compression)) as writer:
            for record in records:
                writer.write(record)
        assert [record for _, record in iter_records(path)] == records
        cut = tmp_path / f"cut.tfrecord{suffix}"
        cut.write_bytes(zlib.compress(b"".join(map(encode_record, records))[: -(2 << 20)]) if compression == "ZLIB"
                        else gzip.compress(b"".join(map(encode_record, records))[: -(2 << 20)]))
        with pytest.raises(DataLossError, match=f"truncated record at byte offset {3 * 16 + 6 + (3 << 20) + 5}:"):
            list(iter_records(cut))


def test_corrupt_and_truncated_gzip_streams(tmp_path):
    packed = bytearray(GOLDEN["GZIP"])
    path = tmp_path / "bad.tfrecord.gz"
    path.write_bytes(bytes(packed[:-12]))
    with pytest.raises(DataLossError, match=rf"^{path}: truncated GZIP stream at byte offset"):
        list(iter_records(path))
    packed[-5] ^= 0xFF  # the stored CRC32 of the gzip member
    path.write_bytes(bytes(packed))
    with pytest.raises(DataLossError, match="corrupt GZIP stream"):
        list(iter_records(path))


def test_read_record_at(tmp_path):
    path, data = _three_records(tmp_path)
    reader = RangeReader(str(path))
    assert [read_record_at(reader, str(path), offset) for offset in OFFSETS] == RECORDS
    with pytest.raises(DataLossError, match="corrupted record length at byte offset 1"):
        read_record_at(reader, str(path), 1)
    data[28] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataLossError, match="corrupted record data at byte offset 16"):
        read_record_at(RangeReader(str(path)), str(path), 16)


def test_read_record_at_refuses_a_record_past_the_end(tmp_path):
    path, data = _three_records(tmp_path)
    path.write_bytes(bytes(data[:-3]))
    reader = RangeReader(str(path))
    for size in (len(data) - 3, None):  # found from the size before reading, or from the short read
        with pytest.raises(DataLossError, match="truncated"):
            read_record_at(reader, str(path), OFFSETS[-1], size=size)


@pytest.mark.parametrize("where", ["data", "length"])
def test_records_before_a_corrupt_one_are_still_delivered(tmp_path, where):
    path = tmp_path / "many.tfrecord"
    path.write_bytes(b"".join(encode_record(b"r%d" % i) for i in range(100)))
    bad = [offset for offset, _ in iter_records(path)][60]
    data = bytearray(path.read_bytes())
    data[bad + (HEADER_SIZE if where == "data" else 0)] ^= 0x01
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(DataLossError, match=f"corrupted record {where} at byte offset {bad}:"):
        for _, record in iter_records(path):
            got.append(record)
    assert got == [b"r%d" % i for i in range(60)]


def test_a_corrupt_record_megabytes_in_is_found_after_its_predecessors(tmp_path):
    path = tmp_path / "long.tfrecord"
    records = [bytes([i % 251]) * 1000 for i in range(3000)]  # ~3 MB: several read buffers / C calls
    path.write_bytes(b"".join(map(encode_record, records)))
    bad = 2500 * 1016
    data = bytearray(path.read_bytes())
    data[bad + HEADER_SIZE + 999] ^= 0x10
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(DataLossError, match=f"corrupted record data at byte offset {bad}:"):
        for offset, record in iter_records(path):
            got.append(record)
    assert got == records[:2500]
    assert len(list(iter_records(path, verify=False))) == 3000


def test_byte_ranges_read_their_records_only(tmp_path):
    path = tmp_path / "range.tfrecord"
    path.write_bytes(b"".join(encode_record(b"r%d" % i) for i in range(10)))
    offsets = [offset for offset, _ in iter_records(path)]
    assert list(iter_records(path, start=offsets[3], stop=offsets[6])) == [
        (offsets[i], b"r%d" % i) for i in range(3, 6)]
    size = path.stat().st_size
    with pytest.raises(DataLossError, match=f"range ends at {size + 20} but the file has only {size} bytes"):
        list(iter_records(path, start=offsets[8], stop=size + 20))  # an index promising more than there is


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_reads_a_named_pipe_to_its_end(tmp_path):
    path = tmp_path / "pipe.tfrecord"
    os.mkfifo(path)
    writer = threading.Thread(target=path.write_bytes, args=(GOLDEN[""],))
    writer.start()
    try:
        assert list(iter_records(path)) == list(zip(OFFSETS, RECORDS))
    finally:
        writer.join()
