"""Who may use the bridge: one rule for every request it receives, whatever the path or proxy mode.

* Without ``client_keys_env``: clients on the bridge's own machine (loopback) only; anyone else gets
  403. The bridge holds upstream keys, and in regular mode it is a proxy: open to the network it would
  lend both (and the machine's loopback services) to whoever reaches it.
* With ``client_keys_env``: every request needs one of those keys, from loopback too, in any header or
  query parameter that carries a credential (:func:`presented`); a ``CONNECT`` tunnel is let in by its
  ``Proxy-Authorization`` and counts for the requests inside it. Without one: 401 (407 for a proxy
  ``CONNECT``, so clients know to send proxy credentials).

Nothing is exempt: a request the bridge does not translate (another path, another host in regular
mode) would otherwise reach the reverse target or the network with the bridge's reach.
Client keys are the bridge's, not an upstream's: :func:`strip` removes them from a request before it
goes anywhere. Pure: no mitmproxy here.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import BridgeError, ErrorKind

if TYPE_CHECKING:
    from .config import Client, Config

__all__ = ["CREDENTIAL_HEADERS", "KEY_PARAMS", "Unauthorized", "Forbidden", "check", "identify", "offered", "presented",
           "strip", "is_loopback", "query_secrets", "without_key_params"]

# Headers and query parameters that carry credentials (every provider's and HTTP's own).
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "proxy-authorization", "x-goog-api-key", "api-key", "cookie")
KEY_PARAMS = ("key", "api_key", "api-key", "apikey", "access_token", "token")
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
_MIN_INSIDE = 8  # a client key this long is looked for inside other values too (cookies, Basic, ...)


class Unauthorized(BridgeError):
    status = 401
    kind = ErrorKind.AUTHENTICATION


class Forbidden(BridgeError):
    status = 403
    kind = ErrorKind.PERMISSION


def is_loopback(host: str) -> bool:
    host = host.removeprefix("::ffff:")  # an IPv4 peer on a dual-stack socket
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credential_values(name: str, value: str) -> list[str]:
    """What a credential header's value may hold: a token after its scheme, Basic's user and password."""
    scheme, _, rest = value.strip().partition(" ")
    if not rest:
        return [value.strip()]
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return [rest.strip()] if name != "proxy-authorization" else []
        return [user, password]
    if name == "cookie":
        return [v.strip() for part in value.split(";") for v in part.split("=", 1)[1:]]
    return [rest.strip()]


def query_secrets(url: str) -> list[str]:
    """The values of a URL's key-like query parameters (``?key=…`` as some providers take it)."""
    return [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k.lower() in KEY_PARAMS and v]


def presented(headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str) -> list[str]:
    """Every credential a request carries, in headers (``Bearer``/``Basic`` unwrapped) and the query."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = [v for name, value in pairs if name.lower() in CREDENTIAL_HEADERS
             for v in _credential_values(name.lower(), value)]
    return [v for v in [*found, *query_secrets(url)] if v]


def offered(headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str) -> list[str]:
    """The client keys a request offers, in the places clients put them: ``x-api-key``, ``Authorization:
    Bearer``, ``x-goog-api-key`` and ``?key=`` (Gemini), ``api-key`` (Azure), ``Proxy-Authorization``
    (Bearer, or Basic with the key as user or password). Stricter than :func:`presented`, which finds
    every credential to strip or blank."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: list[str] = []
    for name, value in pairs:
        name, value = name.lower(), value.strip()
        scheme, _, token = value.partition(" ")
        if name in ("x-api-key", "x-goog-api-key", "api-key"):
            found.append(value)
        elif name == "authorization" and scheme.lower() == "bearer":
            found.append(token.strip())
        elif name == "proxy-authorization" and scheme.lower() in ("bearer", "basic"):
            found += _credential_values(name, value)
    found += [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k == "key"]
    return [v for v in found if v]


def check(config: Config, headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str, *, loopback: bool,
          tunnel_authorized: bool = False) -> BridgeError | None:
    """None when the request may go on, else the error to answer it with (never echoing a key). The
    client keys are read from the environment now, so a rotated key takes effect at once."""
    if not config.client_keys_env:
        if loopback:
            return None
        return Forbidden("this bridge serves only clients on its own machine unless client_keys_env is set")
    keys = config.client_keys()
    if tunnel_authorized or any(c in keys for c in offered(headers, url)):
        return None
    return Unauthorized("this bridge needs a client key it knows (x-api-key, Authorization: Bearer, "
                        "x-goog-api-key, api-key or ?key=)")


def identify(config: Config, headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str) -> Client | None:
    """The client whose key a request offers (the first offered that is one's)."""
    return next((c for k in offered(headers, url) if (c := config.client_by_key(k)) is not None), None)


def without_key_params(query: str) -> str:
    """A query string (``?…`` or empty) without the parameters that carry credentials."""
    pairs = parse_qsl(query.removeprefix("?"), keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in KEY_PARAMS]
    if len(kept) == len(pairs):
        return query
    return f"?{urlencode(kept)}" if kept else ""


def strip(headers: Iterable[tuple[str, str]], url: str, client_keys: frozenset[str]) -> tuple[list[str], str]:
    """(names of headers that carry a client key, the URL without query parameters that do): the bridge's
    own keys never travel further. ``Proxy-Authorization`` is the proxy's and never goes on either."""
    long_keys = [k for k in client_keys if len(k) >= _MIN_INSIDE]

    def carries(value: str) -> bool:
        return value in client_keys or any(k in value for k in long_keys)
    names = sorted({name.lower() for name, value in headers
                    if name.lower() == "proxy-authorization" or carries(value)
                    or (name.lower() in CREDENTIAL_HEADERS and any(map(carries, _credential_values(name.lower(),
                                                                                                  value))))})
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not carries(v)]
    if len(kept) != len(pairs):
        url = urlunsplit(parts._replace(query=urlencode(kept)))
    return names, url
