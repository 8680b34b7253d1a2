"""HTTP Digest client authentication for SIP requests (RFC 2617, RFC 7616, RFC 3261 §22).

MD5 and SHA-256 (and their -sess forms), qop=auth or none.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from .message import SipParseError

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True)
class Credentials:
    """A username and password; the password never appears in the repr."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None  # None: answer any realm

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, realm={self.realm!r})"


@dataclass
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=list)
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a WWW-Authenticate/Proxy-Authenticate value; raise SipParseError."""
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise SipParseError(f"unsupported auth scheme: {scheme!r}")
        params = _parse_auth_params(rest)
        if "realm" not in params or "nonce" not in params:
            raise SipParseError("digest challenge without realm or nonce")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm.removesuffix("-SESS") not in _HASHES:
            raise SipParseError(f"unsupported digest algorithm: {algorithm}")
        qop = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
        return cls(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"),
                   params.get("stale", "").lower() == "true")


def _parse_auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,\t":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        name = text[i:eq].strip().lower()
        i = eq + 1
        if i < n and text[i] == '"':
            end = i + 1
            value: list[str] = []
            while end < n and text[end] != '"':
                if text[end] == "\\" and end + 1 < n:
                    end += 1
                value.append(text[end])
                end += 1
            params[name] = "".join(value)
            i = end + 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            params[name] = text[i:end].strip()
            i = end
    return params


def authorization(challenge: Challenge, credentials: Credentials, method: str, uri: str,
                  *, nc: int = 1, cnonce: str | None = None) -> str:
    """Return the Authorization/Proxy-Authorization value answering ``challenge``."""
    algorithm = challenge.algorithm
    hash_name = algorithm.removesuffix("-SESS")

    def h(text: str) -> str:
        return _HASHES[hash_name](text.encode()).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    ha1 = h(f"{credentials.username}:{challenge.realm}:{credentials.password}")
    if algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    qop = "auth" if "auth" in challenge.qop else None
    if qop:
        response = h(f"{ha1}:{challenge.nonce}:{nc_text}:{cnonce}:{qop}:{ha2}")
    else:
        response = h(f"{ha1}:{challenge.nonce}:{ha2}")
    parts = [
        f'username="{credentials.username}"', f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"', f'uri="{uri}"', f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)
