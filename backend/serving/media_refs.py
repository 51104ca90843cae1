"""Decide where a task's image reference may be fetched from, and with which key.

Task data is written by anyone who can import tasks (or call `/predict`), and the
server holds a Label Studio API key, so a reference is never handed to an HTTP client
as the string it arrived as. It is parsed here, checked, and rebuilt from its parts:

- Label Studio's key goes only to the configured Label Studio *origin* (scheme, host
  and port compared after normalising case, a trailing dot and default ports), and
  only for Label Studio's media paths: `/data/upload/...`, `/data/local-files/?d=...`
  and the presign/resolve endpoints of cloud storage. Every other path is refused,
  so a task cannot make the server call Label Studio's API with the key.
- Media paths are percent-decoded and normalised first, and refused when they leave
  their root (`..`, encoded `..`, backslashes, absolute `d=` paths, double encoding).
- Absolute URLs to other hosts are fetched only when the host is allowed, and never
  with the key. URLs with userinfo, backslashes, control characters, non-ASCII hosts,
  bad ports or scheme-relative spellings are refused before any request is made.

The rebuilt URL is what gets fetched, so the HTTP client's parser cannot read a
different host into the string than this module did.
"""
from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import BadRequest, HostNotAllowed, MediaError

__all__ = ["FetchPlan", "Origin", "normalise_allowed_host", "parse_origin", "plan_fetch", "redact_url", "split_origin"]

_CLOUD_SCHEMES = ("s3", "gs", "azure-blob", "azure-spi")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_REF_CHARS = 8192
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED = re.compile(r"%[0-9a-fA-F]{2}")
_PRESIGN_PATH = re.compile(r"^/(tasks|projects)/\d{1,19}/(presign|resolve)/?$")
_UPLOAD_ROOT = "/data/upload/"
_LOCAL_FILES_PATH = "/data/local-files/"


@dataclass(frozen=True)
class Origin:
    """A normalised http(s) origin plus the path prefix Label Studio is served under."""

    scheme: str
    host: str  # lower case, no trailing dot; IPv6 without brackets
    port: int
    base_path: str = ""  # "" or "/prefix" (no trailing slash)

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}{'' if default else f':{self.port}'}{self.base_path}"

    def same_site(self, other: "Origin") -> bool:
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)


@dataclass(frozen=True)
class FetchPlan:
    """What to request: the rebuilt URL, whether it carries Label Studio's key, and
    whether one redirect (Label Studio's presign answer) may be followed, without the key."""

    url: str
    with_key: bool
    follow_once: bool = False


def redact_url(url: str) -> str:
    """The reference without its query (presigned signatures and `?d=` paths stay out
    of logs and error messages), cut to a readable length and printable characters."""
    text = str(url).split("?", 1)[0]
    text = _CONTROL.sub("?", text).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 200 else text[:200] + "..."


def _check_chars(ref: str) -> None:
    if len(ref) > _MAX_REF_CHARS:
        raise BadRequest(f"image reference is {len(ref)} characters long (the limit is {_MAX_REF_CHARS})")
    if _CONTROL.search(ref):
        raise HostNotAllowed(f"{redact_url(ref)}: control characters are not allowed in an image reference")
    if "\\" in ref:
        raise HostNotAllowed(f"{redact_url(ref)}: backslashes are not allowed in an image reference")
    try:
        ref.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{redact_url(ref)}: the reference is not valid Unicode text") from None


def _normalise_host(raw: str, shown: str) -> str:
    host = raw.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise HostNotAllowed(f"{shown}: {raw!r} is not a valid IPv6 address") from None
    if not host.isascii():
        raise HostNotAllowed(f"{shown}: non-ASCII host names are not fetched (write the punycode form)")
    if not _HOSTNAME.match(host):
        raise HostNotAllowed(f"{shown}: {raw!r} is not a valid host name")
    return host


def parse_origin(url: str, *, what: str = "URL", allow_path: bool = False) -> Origin:
    """Parse an http(s) URL into its origin; raise `BadRequest` on anything odd."""
    origin, parts = split_origin(url, what=what)
    shown = redact_url(url)
    path = parts.path.rstrip("/")
    if parts.query or parts.fragment:
        raise BadRequest(f"{what} takes no query or fragment: {shown!r}")
    if path and not allow_path:
        raise BadRequest(f"{what} must be an origin (scheme, host, port), got a path in {shown!r}")
    if path and (any(seg in (".", "..") for seg in path.split("/")) or _ENCODED.search(path)):
        raise BadRequest(f"{what} has an odd path: {shown!r}")
    return Origin(origin.scheme, origin.host, origin.port, quote(path, safe="/-._~") if path else "")


def split_origin(url: str, *, what: str) -> tuple[Origin, SplitResult]:
    """The origin of an http(s) URL (no path) and its parts; `BadRequest` when odd."""
    shown = redact_url(url)
    _check_chars(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BadRequest(f"{what} cannot be parsed: {shown!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise BadRequest(f"{what} must be an http(s) URL, got {shown!r}")
    netloc = parts.netloc
    if "@" in netloc:
        raise HostNotAllowed(f"{shown}: URLs with credentials are not used")
    host_part, port_text = netloc, ""
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0:
            raise BadRequest(f"{shown}: unterminated IPv6 address")
        host_part, rest = netloc[: close + 1], netloc[close + 1 :]
        if rest and not rest.startswith(":"):
            raise BadRequest(f"{shown}: junk after the IPv6 address")
        port_text = rest[1:]
    elif ":" in netloc:
        host_part, port_text = netloc.rsplit(":", 1)
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadRequest(f"{shown}: {port_text!r} is not a port number")
        port = int(port_text)
    else:
        port = _DEFAULT_PORTS[scheme]
    return Origin(scheme, _normalise_host(host_part, shown), port), parts


def _normalise_below(root: str, rest: str, shown: str) -> str:
    """`rest` (already decoded) resolved under `root`; refuse when it climbs out."""
    stack: list[str] = []
    for seg in rest.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not stack:
                raise HostNotAllowed(f"{shown}: the path leaves {root}")
            stack.pop()
            continue
        stack.append(seg)
    if not stack:
        raise HostNotAllowed(f"{shown}: no file named under {root}")
    return "/".join(stack)


def _decoded(text: str, shown: str) -> str:
    """Percent-decode once; a second layer of encoding is refused, not guessed at."""
    value = unquote(text, errors="strict") if "%" in text else text
    if _ENCODED.search(value):
        raise HostNotAllowed(f"{shown}: doubly percent-encoded paths are not fetched")
    _check_chars(value)
    return value


def _label_studio_media(path: str, query: str, shown: str) -> tuple[str, bool]:
    """The canonical path+query of a Label Studio media reference, and whether its
    answer may be a redirect to follow (cloud storage)."""
    try:
        decoded_path = _decoded(path, shown)
    except UnicodeDecodeError:
        raise HostNotAllowed(f"{shown}: the path is not valid percent-encoded UTF-8") from None
    if decoded_path.startswith(_UPLOAD_ROOT):
        if query:
            raise HostNotAllowed(f"{shown}: upload paths take no query")
        rest = _normalise_below(_UPLOAD_ROOT, decoded_path[len(_UPLOAD_ROOT) :], shown)
        return quote(_UPLOAD_ROOT + rest, safe="/-._~"), False
    if decoded_path.rstrip("/") + "/" == _LOCAL_FILES_PATH:
        try:
            params = parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise HostNotAllowed(f"{shown}: malformed local-files query") from None
        if [name for name, _ in params] != ["d"]:
            raise HostNotAllowed(f"{shown}: local-files references take exactly one `d` parameter")
        value = params[0][1]
        if _ENCODED.search(value):
            raise HostNotAllowed(f"{shown}: doubly percent-encoded paths are not fetched")
        _check_chars(value)
        if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
            raise HostNotAllowed(f"{shown}: local-files paths are relative to Label Studio's document root")
        rest = _normalise_below("the local-files document root", value, shown)
        return f"{_LOCAL_FILES_PATH}?d={quote(rest, safe='/-._~')}", False
    if _PRESIGN_PATH.match(decoded_path):
        try:
            params = parse_qsl(query, keep_blank_values=False, strict_parsing=True)
        except ValueError:
            raise HostNotAllowed(f"{shown}: malformed presign query") from None
        if [name for name, _ in params] != ["fileuri"]:
            raise HostNotAllowed(f"{shown}: presign references take exactly one `fileuri` parameter")
        canonical = decoded_path if decoded_path.endswith("/") else decoded_path + "/"
        return f"{canonical}?{urlencode({'fileuri': params[0][1]})}", True
    raise HostNotAllowed(
        f"{shown}: only Label Studio media paths (/data/upload/..., /data/local-files/?d=..., "
        "cloud-storage presign links) are fetched with its key"
    )


def plan_fetch(
    ref: object,
    *,
    task_id: int | None,
    label_studio: Origin | None,
    allowed_hosts: frozenset[str] = frozenset(),
) -> FetchPlan:
    """Classify one task reference; raise `HostNotAllowed`/`BadRequest`/`MediaError`.

    `allowed_hosts` holds normalised `host` or `host:port` entries that may be fetched
    without the key (see `normalise_allowed_host`).
    """
    if not isinstance(ref, str) or not ref.strip():
        raise MediaError("the task has no image reference")
    ref = ref.strip()
    shown = redact_url(ref)
    _check_chars(ref)
    head = ref.split("/", 1)[0]
    scheme = head.split(":", 1)[0].lower() if ":" in head else ""

    if scheme in _CLOUD_SCHEMES:
        if label_studio is None:
            raise MediaError(f"{shown} is in cloud storage; set LABEL_STUDIO_URL so it can be presigned")
        if task_id is None:
            raise MediaError("cloud storage images need the task id to be presigned by Label Studio")
        fileuri = base64.urlsafe_b64encode(ref.encode()).decode()
        return FetchPlan(f"{label_studio.url()}/tasks/{int(task_id)}/presign/?fileuri={fileuri}", True, True)

    if scheme in _DEFAULT_PORTS:
        origin, parts = _url_origin(ref, shown)
        if label_studio is not None and origin.same_site(label_studio):
            path = parts.path
            if label_studio.base_path:
                if not path.startswith(label_studio.base_path + "/"):
                    raise HostNotAllowed(f"{shown}: outside Label Studio's path {label_studio.base_path}")
                path = path[len(label_studio.base_path) :]
            canonical, follow = _label_studio_media(path, parts.query, shown)
            return FetchPlan(label_studio.url() + canonical, True, follow)
        for key in (f"{origin.host}:{origin.port}", origin.host):
            if key in allowed_hosts:
                path = quote(unquote(parts.path), safe="/-._~!$&'()*+,;=:@") or "/"
                query = f"?{parts.query}" if parts.query else ""
                return FetchPlan(f"{origin.url()}{path}{query}", False, False)
        raise HostNotAllowed(
            f"{shown}: host {origin.host!r} is neither Label Studio nor in --allowed-host (RAM_ANNOTATE_ALLOWED_HOSTS)"
        )
    if scheme:
        raise HostNotAllowed(f"{shown}: the {scheme!r} scheme is not fetched")
    if ref.startswith("//"):
        raise HostNotAllowed(f"{shown}: scheme-relative URLs are not fetched")
    if ref.startswith("/"):
        if label_studio is None:
            raise MediaError(
                f"{shown} is a Label Studio path; set LABEL_STUDIO_URL (or connect from "
                "Label Studio, which sends its hostname to /setup)"
            )
        path, _, query = ref.partition("?")
        canonical, follow = _label_studio_media(path, query.split("#", 1)[0], shown)
        return FetchPlan(label_studio.url() + canonical, True, follow)
    raise HostNotAllowed(f"{shown}: not an http(s) URL, cloud URI or Label Studio path")


def _url_origin(ref: str, shown: str) -> tuple[Origin, SplitResult]:
    """An image URL's origin (its path is checked later, by who it goes to)."""
    try:
        return split_origin(ref, what="image URL")
    except BadRequest as exc:
        raise HostNotAllowed(exc.message) from None


def normalise_allowed_host(entry: str) -> str:
    """`Host[:port]` as an operator wrote it -> the form `plan_fetch` compares against."""
    text = entry.strip()
    origin = parse_origin(f"http://{text}", what="--allowed-host entry")
    has_port = bool(urlsplit(f"http://{text}").port)
    return f"{origin.host}:{origin.port}" if has_port else origin.host
