"""Tests for tensornet.datasets.cache: search order and downloads from a real local HTTP server."""

import hashlib
import http.server
import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from helpers import isolate_dataset_environment
from tensornet.datasets import cache

NAME = "toy"
FILES = ["a-idx1-ubyte.gz", "b-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, data dir, system dir or proxy leaks into a test."""
    isolate_dataset_environment(tmp_path, monkeypatch)
    monkeypatch.setattr(cache, "SYSTEM_DIRS", (str(tmp_path / "system"),))
    return SimpleNamespace(cache=tmp_path / "xdg" / "tensornet" / "datasets" / NAME,
                           system=tmp_path / "system" / NAME)


@pytest.fixture
def server():
    """A ThreadingHTTPServer on 127.0.0.1 serving ``files`` (URL path -> bytes)."""
    files, hits, release = {}, [], threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path.startswith("/hang/"):
                release.wait(10)
                return
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{srv.server_port}/", files=files, hits=hits)
    release.set()
    srv.shutdown()
    srv.server_close()
    thread.join()


def _fill(directory, files=FILES, tag=b""):
    directory.mkdir(parents=True, exist_ok=True)
    for f in files:
        (directory / f).write_bytes(tag + f.encode())
    return directory


def _dirs(paths):
    return {os.path.dirname(p) for p in paths}


def test_search_order(tmp_path, monkeypatch, isolated):
    data = tmp_path / "data"
    monkeypatch.setenv(cache.DATA_ENV, str(data))
    explicit = _fill(tmp_path / "explicit")
    ordered = [_fill(data / NAME), _fill(data), _fill(isolated.cache), _fill(isolated.system)]
    assert cache.search_dirs(NAME) == [str(d) for d in ordered]

    found = cache.find_dataset(NAME, FILES, path=explicit)
    assert found == [str(explicit / f) for f in FILES]
    for i, d in enumerate(ordered):
        found = cache.find_dataset(NAME, FILES)
        assert found == [str(d / f) for f in FILES], f"step {i}"
        for f in FILES:
            (d / f).unlink()
    with pytest.raises(cache.DownloadError, match="no URL"):
        cache.find_dataset(NAME, FILES)


def test_explicit_path_does_not_fall_through(tmp_path, monkeypatch, isolated):
    _fill(isolated.system)
    explicit = _fill(tmp_path / "explicit", FILES[:1])
    with pytest.raises(FileNotFoundError) as e:
        cache.find_dataset(NAME, FILES, path=explicit)
    assert str(explicit) in str(e.value) and FILES[1] in str(e.value)
    assert FILES[0] not in str(e.value)
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        cache.find_dataset(NAME, FILES, path=tmp_path / "nonexistent")


def test_gzipped_or_raw(tmp_path):
    d = tmp_path / "d"
    _fill(d, ["a-idx1-ubyte", "b-idx1-ubyte.gz"])
    assert cache.find_dataset(NAME, FILES, path=d) == [str(d / "a-idx1-ubyte"), str(d / "b-idx1-ubyte.gz")]
    # names may also be given without .gz and be found compressed
    assert cache.find_dataset(NAME, ["b-idx1-ubyte"], path=d) == [str(d / "b-idx1-ubyte.gz")]


def test_incomplete_directory_is_skipped(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv(cache.DATA_ENV, str(tmp_path / "data"))
    _fill(tmp_path / "data" / NAME, FILES[:1])
    _fill(isolated.system)
    assert _dirs(cache.find_dataset(NAME, FILES)) == {str(isolated.system)}


def test_empty_data_env_is_ignored(monkeypatch, isolated):
    monkeypatch.setenv(cache.DATA_ENV, "")
    assert cache.search_dirs(NAME) == [str(isolated.cache), str(isolated.system)]


def test_user_cache_dir_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.user_cache_dir("x") == str(tmp_path / ".cache" / "tensornet" / "datasets" / "x")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # ignored, per the XDG spec
    assert cache.user_cache_dir() == str(tmp_path / ".cache" / "tensornet" / "datasets")


def _serve(server, prefix="/"):
    blobs = {f: os.urandom(300) + f.encode() for f in FILES}
    for f, b in blobs.items():
        server.files[prefix + f] = b
    return blobs, {f: hashlib.sha256(b).hexdigest() for f, b in blobs.items()}


def test_download_into_cache_once(server, isolated):
    blobs, digests = _serve(server)
    found = cache.find_dataset(NAME, FILES, urls=server.url, sha256=digests)
    assert found == [str(isolated.cache / f) for f in FILES]
    for f in FILES:
        assert (isolated.cache / f).read_bytes() == blobs[f]
    assert sorted(os.listdir(isolated.cache)) == sorted(FILES)  # no temp files left
    assert sorted(server.hits) == sorted("/" + f for f in FILES)
    assert cache.find_dataset(NAME, FILES, urls=server.url, sha256=digests) == found
    assert len(server.hits) == 2


def test_only_missing_files_are_downloaded(server, isolated):
    blobs, digests = _serve(server)
    _fill(isolated.cache, FILES[:1])
    cache.find_dataset(NAME, FILES, urls=server.url, sha256=digests)
    assert server.hits == ["/" + FILES[1]]


def test_checksum_mismatch_leaves_nothing(server, isolated):
    blobs, digests = _serve(server)
    wrong = dict(digests, **{FILES[1]: "0" * 64})
    with pytest.raises(cache.ChecksumError) as e:
        cache.find_dataset(NAME, FILES, urls=server.url, sha256=wrong)
    msg = str(e.value)
    assert FILES[1] in msg and "0" * 64 in msg and digests[FILES[1]] in msg
    assert os.listdir(isolated.cache) == [FILES[0]]  # the good file stays, no partial one


def test_accepts_any_of_several_digests(server, isolated):
    blobs, digests = _serve(server)
    alt = {f: ("f" * 64, d) for f, d in digests.items()}
    cache.find_dataset(NAME, FILES, urls=server.url, sha256=alt)
    assert sorted(os.listdir(isolated.cache)) == sorted(FILES)


def test_next_mirror_after_404_and_bad_data(server, isolated):
    blobs, digests = _serve(server, "/good/")
    server.files["/bad/" + FILES[0]] = b"captive portal"
    bases = [server.url + "missing/", server.url + "bad/", server.url + "good/"]
    cache.find_dataset(NAME, FILES, urls=bases, sha256=digests)
    assert (isolated.cache / FILES[0]).read_bytes() == blobs[FILES[0]]
    assert server.hits[:3] == ["/missing/" + FILES[0], "/bad/" + FILES[0], "/good/" + FILES[0]]


def test_download_failure_message(server, isolated):
    _, digests = _serve(server)
    with pytest.raises(cache.DownloadError) as e:
        cache.find_dataset(NAME, FILES, urls=server.url + "nothing/", sha256=digests,
                           hint="Try apt-get install dataset-toy.")
    msg = str(e.value)
    assert "404" in msg and FILES[0] in msg and "apt-get install dataset-toy" in msg
    assert str(isolated.system) in msg
    assert os.listdir(isolated.cache) == []


def test_connection_refused(isolated):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(cache.DownloadError, match="could not download"):
        cache.find_dataset(NAME, FILES, urls=f"http://127.0.0.1:{port}/", sha256={f: "0" * 64 for f in FILES})
    assert os.listdir(isolated.cache) == []


def test_timeout(server, isolated):
    start = time.perf_counter()
    with pytest.raises(cache.DownloadError, match="timed out"):
        cache.find_dataset(NAME, FILES, urls=server.url + "hang/", sha256={f: "0" * 64 for f in FILES},
                           timeout=0.3)
    assert time.perf_counter() - start < 5
    assert os.listdir(isolated.cache) == []


def test_url_from_env_and_argument(server, monkeypatch, isolated):
    blobs, digests = _serve(server, f"/{NAME}/")
    monkeypatch.setenv(cache.URL_ENV, server.url + "{name}")
    cache.find_dataset(NAME, FILES, default_urls=["http://127.0.0.1:9/never/"], sha256=digests)
    assert sorted(os.listdir(isolated.cache)) == sorted(FILES)
    for f in FILES:
        (isolated.cache / f).unlink()
    monkeypatch.setenv(cache.URL_ENV, server.url + "wrong/")
    cache.find_dataset(NAME, FILES, urls=[server.url + NAME], sha256=digests)
    assert all(h.startswith(f"/{NAME}/") for h in server.hits)


def test_refuses_unchecked_download(server):
    with pytest.raises(ValueError, match="no known SHA-256"):
        cache.find_dataset(NAME, FILES, urls=server.url, sha256={FILES[0]: "0" * 64})
    assert server.hits == []
