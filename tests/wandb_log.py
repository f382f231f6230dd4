"""Read a W&B offline run's transaction log (`run-<id>.wandb`) with wandb's own protobuf schema.

The file is W&B's LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks
of records (crc32 4 bytes, length 2, type 1: FULL/FIRST/MIDDLE/LAST). wandb 0.31 ships no Python
reader (the writer lives in wandb-core), so the test decodes the framing and lets
wandb.proto.wandb_internal_pb2.Record parse each payload.

Only the run record (group, job type, name, project) is read, to check that the workflow writes real W&B
runs; what a job logs is checked through tracking mode `record` (a plain JSON file per run), not here.
"""
from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        payload = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        if kind in (FULL, FIRST):
            pending = payload
        else:
            pending += payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def run_info(path: str | Path) -> dict:
    for r in records(path):
        if r.WhichOneof("record_type") == "run":
            return {"group": r.run.run_group, "job_type": r.run.job_type, "name": r.run.display_name,
                    "project": r.run.project}
    return {}
