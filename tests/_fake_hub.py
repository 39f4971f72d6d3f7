"""A small Hugging Face Hub on loopback, speaking the resolve protocol that huggingface_hub's client uses.

    HEAD/GET /{repo}/resolve/{revision}/{file}
        200 for a small file: X-Repo-Commit (the commit the revision names), ETag (the blob's id) and the body
        302 for a large file, to the "storage" server on another host (localhost vs 127.0.0.1, another port):
            the HEAD answer itself carries X-Linked-Etag and X-Linked-Size, as the Hub's does for LFS files,
            and the storage server answers the GET without asking for a token
        307 for a renamed repo, to the new name's path on the same host (a relative Location, like the Hub's)
        404 + X-Error-Code: EntryNotFound (with X-Repo-Commit), RevisionNotFound; 401 + RepoNotFound (the
            Hub's answer for a repo that does not exist or is private)
    GET /api/models/{repo}/tree/{revision}/{folder}
        404 + EntryNotFound: HF transformers' tokenizer asks for additional_chat_templates/, which no repo here has

Every request is recorded (method, host, path, Authorization header), so a test can check where the token
went. The repos, their commits and files are data (`Repo`), served from real files (MiniLM's).
"""
import hashlib
import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

LARGE_FILE_BYTES = 1024 * 1024  # files from this size on go to the storage server, like the Hub's LFS files


@dataclass
class Repo:
    files: Dict[str, Path]                 # file name in the repo -> the real file served
    revisions: Dict[str, str]              # branch or tag or commit -> commit (40 hex digits)
    renamed_from: tuple = ()               # old names answered with a 307


@dataclass
class Request:
    method: str
    host: str
    path: str
    authorization: str


@dataclass
class FakeHub:
    repos: Dict[str, Repo]
    requests: list = field(default_factory=list)

    def start(self):
        self.hub = _serve(self, storage=False, host="127.0.0.1")
        self.storage = _serve(self, storage=True, host="localhost")
        self.endpoint = f"http://127.0.0.1:{self.hub.server_port}"
        self.storage_url = f"http://localhost:{self.storage.server_port}"
        return self

    def stop(self):
        for server in (self.hub, self.storage):
            server.shutdown()
            server.server_close()

    def blob(self, path):
        data = Path(path).read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    def find(self, name):
        """(the repo's current name, Repo) for a current or old name, else (None, None)."""
        for current, repo in self.repos.items():
            if name == current or name in repo.renamed_from:
                return current, repo
        return None, None


def _serve(hub, storage, host):
    handler = type("Handler", (_StorageHandler if storage else _HubHandler,), {"hub": hub})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass  # the requests are recorded in hub.requests instead

    def record(self):
        self.hub.requests.append(Request(self.command, self.headers.get("Host", ""), self.path,
                                         self.headers.get("Authorization", "")))

    def answer(self, status, headers, body=b""):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up after the headers: nothing left to tell it

    def do_HEAD(self):
        self.record()
        self.resolve()

    def do_GET(self):
        self.record()
        self.resolve()


class _HubHandler(_Handler):
    def resolve(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "models", parts[2] if len(parts) > 2 else ""] and "tree" in parts:
            # HF transformers lists a repo's additional_chat_templates/ folder: this Hub has no folders.
            known = self.hub.find("/".join(parts[2:parts.index("tree")]))[1] is not None
            return self.answer(404, {"X-Error-Code": "EntryNotFound" if known else "RepoNotFound"})
        if "resolve" not in parts:
            return self.answer(404, {"X-Error-Code": "RepoNotFound"})
        at = parts.index("resolve")
        name, revision, file = "/".join(parts[:at]), parts[at + 1], "/".join(parts[at + 2:])
        current, repo = self.hub.find(name)
        if repo is None:
            return self.answer(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        if current != name:
            return self.answer(307, {"Location": f"/{current}/resolve/{revision}/{file}"})
        commit = repo.revisions.get(revision)
        if commit is None:
            return self.answer(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
        if file not in repo.files:
            return self.answer(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        data, sha256 = self.hub.blob(repo.files[file])
        if len(data) >= LARGE_FILE_BYTES:
            return self.answer(302, {"Location": f"{self.hub.storage_url}/blobs/{sha256}?signature=abc",
                                     "X-Repo-Commit": commit, "ETag": f'"{sha256[:40]}"',
                                     "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))})
        etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id, as the Hub's ETag
        self.answer(200, {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}, data)


class _StorageHandler(_Handler):
    def resolve(self):
        sha256 = self.path.split("?")[0].rsplit("/", 1)[-1]
        for repo in self.hub.repos.values():
            for path in repo.files.values():
                data, digest = self.hub.blob(path)
                if digest == sha256:
                    return self.answer(200, {"ETag": f'"{sha256}"'}, data)
        self.answer(404, {})
