"""Files through the Python SDK: binary upload and streamed download,
missing file 404, bad path 400 (API.md §4.5)."""

from __future__ import annotations

import io
import os

import createos
import pytest
from createos import RunCommandRequest as Cmd


def test_binary_round_trip(sandbox):
    data = bytes(range(256)) * 4 + os.urandom(4096)
    sandbox.files.upload("/tmp/py/deep/dir/blob.bin", data)
    with sandbox.files.download("/tmp/py/deep/dir/blob.bin") as stream:
        back = stream.read()
    assert back == data
    size = sandbox.run_command(Cmd(command="stat", arguments=["-c", "%s", "/tmp/py/deep/dir/blob.bin"]))
    assert size.result.standard_output.strip() == str(len(data))


def test_file_object_upload_and_chunked_download(sandbox):
    data = os.urandom(5 * 1024 * 1024 + 17)
    sandbox.files.upload("/tmp/py/fileobj.bin", io.BytesIO(data))
    chunks = []
    with sandbox.files.download("/tmp/py/fileobj.bin") as stream:
        for chunk in stream.iter_bytes(65536):
            chunks.append(chunk)
    assert b"".join(chunks) == data


def test_generator_upload_is_chunked(sandbox):
    parts = [os.urandom(300_000) for _ in range(4)]
    sandbox.files.upload("/tmp/py/gen.bin", (p for p in parts))
    with sandbox.files.download("/tmp/py/gen.bin") as stream:
        assert stream.read() == b"".join(parts)


def test_odd_path_characters(sandbox):
    path = "/tmp/x y/ü&=+.bin"
    sandbox.files.upload(path, b"odd")
    cat = sandbox.run_command(Cmd(command="cat", arguments=[path]))
    assert cat.result.standard_output == "odd"
    with sandbox.files.download(path) as s:
        assert s.read() == b"odd"


def test_file_written_by_exec_downloads(sandbox):
    sandbox.shell("printf 'from exec' > /root/made-by-exec.txt")
    with sandbox.files.download("/root/made-by-exec.txt") as s:
        assert s.read() == b"from exec"


def test_missing_file_is_404(sandbox):
    with pytest.raises(createos.APIError) as info:
        with sandbox.files.download("/tmp/py/not/here") as s:
            s.read()
    assert info.value.status_code == 404


@pytest.mark.parametrize("bad", ["relative/path", "", "/tmp/nul\x00byte"])
def test_bad_path_is_400(sandbox, bad):
    with pytest.raises(createos.APIError) as info:
        with sandbox.files.download(bad) as s:
            s.read()
    assert info.value.status_code == 400
    with pytest.raises(createos.APIError) as info:
        sandbox.files.upload(bad, b"x")
    assert info.value.status_code == 400
