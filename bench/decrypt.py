"""Decryption: `MediaDecryptor` file to file against `openssl enc -d -aes-256-cbc`.

A 200 MB file is encrypted the way WhatsApp's CDN stores it (AES-256-CBC, then a
10-byte MAC). mediamon's decryptor reads it in 1 MiB chunks into one reused buffer
and writes the plaintext straight from the decryptor's own buffers, checking
fileEncSha256, the MAC, the padding, fileSha256 and the length; openssl decrypts the
same ciphertext (without the MAC, which it would not understand) with no check but
the padding. Bound: at least 0.8 times openssl's throughput. Each figure is the best
of five runs. The files live on tmpfs (/dev/shm) where it has room, so that neither
side's time depends on the disk's writeback, which varies by a factor of three from
run to run here.

The breakdown that follows times each part of the decryptor's work alone, in memory,
over the same chunks: AES, the three SHA-256 passes, and plain file I/O. The
decryptor runs the hashes on worker threads beside AES and the I/O, so its wall time
cannot fall below the sum of the parts divided by the number of cores; that floor is
printed too, as what the bound is up against. On the two-core machine this was written
on, the floor itself comes to only 0.8 to 0.85 of openssl's throughput, so the bound
passes only when the overlap is close to perfect, and most runs fall short of it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import common
from common import say
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mediamon.core.crypto import (
    INFO_BY_KIND,
    MAC_LENGTH,
    MediaDecryptor,
    MediaKeys,
    derive_keys,
    encrypt_media,
)
from mediamon.core.models import MediaKind

CHUNK: Final = 1024 * 1024
RUNS: Final = 5
INFO: Final = INFO_BY_KIND[MediaKind.VIDEO]


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def decrypt_file(
    blob: Path, out: Path, media_key: bytes, enc_sha: bytes, plain_sha: bytes, length: int
) -> None:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with (
        MediaDecryptor(
            media_key, INFO, enc_sha256=enc_sha, plain_sha256=plain_sha, plain_length=length
        ) as decryptor,
        blob.open("rb", buffering=0) as source,
        out.open("wb", buffering=0) as target,
    ):
        while read := source.readinto(buffer):
            target.write(decryptor.feed_view(view[:read]))
        target.write(decryptor.finish())


def openssl(ciphertext: Path, out: Path, key: bytes, iv: bytes) -> None:
    command = ["openssl", "enc", "-d", "-aes-256-cbc", "-K", key.hex(), "-iv", iv.hex()]
    subprocess.run([*command, "-in", str(ciphertext), "-out", str(out)], check=True)


def openssl_with_checks(blob: Path, ciphertext: Path, out: Path, keys: MediaKeys) -> None:
    """openssl doing the decryptor's whole job: both hashes and the MAC, then AES."""
    sha256 = ["openssl", "dgst", "-sha256"]
    mac = [*sha256, "-mac", "HMAC", "-macopt", f"hexkey:{keys.mac_key.hex()}"]
    for command in ([*sha256, str(blob)], [*mac, str(ciphertext)]):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    openssl(ciphertext, out, keys.cipher_key, keys.iv)
    subprocess.run([*sha256, str(out)], check=True, stdout=subprocess.DEVNULL)


def copy_file(source_path: Path, out: Path) -> None:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with source_path.open("rb", buffering=0) as source, out.open("wb", buffering=0) as target:
        while read := source.readinto(buffer):
            target.write(view[:read])


def breakdown(
    blob: bytes, plain: bytes, media_key: bytes, files: tuple[Path, Path]
) -> dict[str, float]:
    keys = derive_keys(media_key, INFO)
    ciphertext = memoryview(blob)[:-MAC_LENGTH]
    cipher_chunks = [ciphertext[at : at + CHUNK] for at in range(0, len(ciphertext), CHUNK)]
    plain_view = memoryview(plain)
    plain_chunks = [plain_view[at : at + CHUNK] for at in range(0, len(plain), CHUNK)]

    def aes() -> None:
        decryptor = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).decryptor()
        out = bytearray(CHUNK + 16)
        for chunk in cipher_chunks:
            decryptor.update_into(chunk, out)
        decryptor.finalize()

    def sha256(chunks: list[memoryview]) -> Callable[[], None]:
        def run() -> None:
            digest = hashlib.sha256()
            for chunk in chunks:
                digest.update(chunk)
            digest.digest()

        return run

    def mac() -> None:
        signer = hmac.new(keys.mac_key, keys.iv, "sha256")
        for chunk in cipher_chunks:
            signer.update(chunk)
        signer.digest()

    return {
        "AES-256-CBC": best_of(RUNS, aes),
        "SHA-256 of the encrypted file": best_of(RUNS, sha256(cipher_chunks)),
        "HMAC-SHA256 (the MAC)": best_of(RUNS, mac),
        "SHA-256 of the plaintext": best_of(RUNS, sha256(plain_chunks)),
        "file read + write": best_of(RUNS, lambda: copy_file(*files)),
    }


def scratch(size: int) -> str | None:
    """/dev/shm when it can hold the five copies of the file made here, else the default."""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return None
    return "/dev/shm" if free > 6 * size else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    size = args.megabytes * 1_000_000

    with tempfile.TemporaryDirectory(prefix="mediamon-bench-decrypt-", dir=scratch(size)) as temp:
        folder = Path(temp)
        plain = os.urandom(size)
        media_key = os.urandom(32)
        blob = encrypt_media(plain, media_key, INFO)
        keys = derive_keys(media_key, INFO)
        blob_path, cbc_path = folder / "blob.enc", folder / "blob.cbc"
        blob_path.write_bytes(blob)
        cbc_path.write_bytes(memoryview(blob)[:-MAC_LENGTH])
        enc_sha, plain_sha = hashlib.sha256(blob).digest(), hashlib.sha256(plain).digest()

        ours = best_of(
            RUNS,
            lambda: decrypt_file(
                blob_path, folder / "plain", media_key, enc_sha, plain_sha, len(plain)
            ),
        )
        if (folder / "plain").read_bytes() != plain:
            raise RuntimeError("MediaDecryptor wrote something other than the plaintext")
        theirs = best_of(
            RUNS, lambda: openssl(cbc_path, folder / "plain.openssl", keys.cipher_key, keys.iv)
        )
        if (folder / "plain.openssl").stat().st_size != len(plain):
            raise RuntimeError("openssl wrote a plaintext of the wrong length")
        checked = best_of(
            RUNS,
            lambda: openssl_with_checks(blob_path, cbc_path, folder / "plain.openssl", keys),
        )
        parts = breakdown(blob, plain, media_key, (blob_path, folder / "copy"))

    megabytes = size / 1e6
    say(f"MediaDecryptor {ours:.3f} s, openssl {theirs:.3f} s for {megabytes:.0f} MB")
    say(
        f"openssl doing the same checks (dgst twice, HMAC, enc -d): {checked:.3f} s, "
        f"so MediaDecryptor runs at {checked / ours:.2f} x C speed for the same work"
    )
    for name, seconds in parts.items():
        say(f"  {name:<30} alone {seconds:.3f} s  {megabytes / seconds:7,.0f} MB/s")
    hashing = sum(seconds for name, seconds in parts.items() if "SHA" in name)
    say(f"  the three SHA-256 passes together: {hashing:.3f} s")
    cores = os.cpu_count() or 1
    floor = sum(parts.values()) / cores
    say(
        f"  all parts together {sum(parts.values()):.3f} s; spread over {cores} cores at "
        f"best {floor:.3f} s, a ratio of {theirs / floor:.2f} at most"
    )

    figure = common.report(
        "decrypt",
        megabytes / ours,
        "MB/s",
        reference=megabytes / theirs,
        reference_label="openssl enc -d",
        at_least=0.8,
        detail=f"AES alone {megabytes / parts['AES-256-CBC']:,.0f} MB/s, SHA-256 passes "
        f"{hashing:.2f} s of CPU; {ours:.3f} s against a floor of {floor:.3f} s on {cores} cores",
    )
    return 0 if figure.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
