#!/usr/bin/env python3
"""Checks the KEM packet format's test vector with a second implementation.

Reads mix-packet/tests/vectors/kem-packet.txt and processes its header hop
by hop from the layout in docs/protocol.md ("The KEM packet format"), using
Python's hashlib/hmac and the `cryptography` package's ChaCha20: per-hop
keys from the listed shared secret (X-Wing itself is checked against its
draft's vectors in the Rust tests), the replay tag, the header MAC, the
routing command, and the next hop's header. The payload's Lioness layers
are not re-implemented here.

    python3 scripts/check_kem_vector.py [path]
"""

import hashlib
import hmac
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

CT_LEN, MAC_LEN, ROUTING_LEN = 1120, 16, 57
SLOT_LEN = ROUTING_LEN + CT_LEN + MAC_LEN
SALT, INFO = b"aegislink/v1/kem-packet", b"hop keys"


def hkdf(salt, ikm, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def keystream(key, length):
    # cryptography's ChaCha20 nonce: 32-bit little-endian counter, then the
    # 96-bit nonce; both zero here.
    enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return enc.update(bytes(length))


def parse(path):
    head, hops, current = {}, [], None
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#") or " = " not in line:
            continue
        key, value = line.split(" = ", 1)
        if key == "hop":
            current = {}
            hops.append(current)
        (current if current is not None else head)[key] = value
    return head, hops


def main(path):
    head, hops = parse(path)
    header = bytes.fromhex(head["header"])
    beta_len = (len(hops) - 1) * SLOT_LEN + ROUTING_LEN
    assert len(header) == CT_LEN + MAC_LEN + beta_len, "header length"
    for i, hop in enumerate(hops):
        okm = hkdf(SALT, bytes.fromhex(hop["shared_secret"]), INFO, 112)
        stream_key, mac_key, tag = okm[:32], okm[32:64], okm[80:112]
        assert tag.hex() == hop["replay_tag"], f"hop {i}: replay tag"
        gamma = header[CT_LEN:CT_LEN + MAC_LEN]
        beta = header[CT_LEN + MAC_LEN:]
        expected = hmac.new(mac_key, beta, hashlib.sha256).digest()[:MAC_LEN]
        assert hmac.compare_digest(gamma, expected), f"hop {i}: header MAC"
        plain = bytes(a ^ b for a, b in zip(beta + bytes(SLOT_LEN), keystream(stream_key, beta_len + SLOT_LEN)))
        kind, address = plain[0], plain[1:33].hex()
        delay = int.from_bytes(plain[33:41], "big")
        delivery_tag = plain[41:57].hex()
        if "next_hop" in hop:
            assert kind == 1, f"hop {i}: forward kind"
            assert address == hop["next_hop"], f"hop {i}: next hop"
            assert delay == int(hop["delay_ns"]), f"hop {i}: delay"
            assert delivery_tag == "00" * 16, f"hop {i}: unused tag field"
            header = plain[ROUTING_LEN:]
        else:
            assert kind == 2, f"hop {i}: final kind"
            assert address == hop["final_destination"], f"hop {i}: destination"
            assert delay == 0, f"hop {i}: unused delay field"
            assert delivery_tag == hop["delivery_tag"], f"hop {i}: delivery tag"
            assert i == len(hops) - 1, "final before the last hop"
    print(f"{len(hops)} hops: replay tags, MACs, routing and next headers match")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mix-packet/tests/vectors/kem-packet.txt")
