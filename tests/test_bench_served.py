"""bench/served.py's plumbing (arguments, the table) without starting a server."""

from __future__ import annotations

import pytest

from bench.served import SIDES, markdown, parse_args


def test_arguments():
    args = parse_args([])
    assert args.sides == list(SIDES) and len(SIDES) == 4 and args.limit_sst2 == 100 and args.limit_xsum == 20 and args.device == "cpu"
    assert parse_args(["--sides", "evalkit-hf,evalkit-vllm"]).sides == ["evalkit-hf", "evalkit-vllm"]
    with pytest.raises(SystemExit, match="--sides"):
        parse_args(["--sides", "raw"])


def test_table_ratios_and_agreement():
    report = {"device": "cpu", "cpus": 2, "load_before": (3.0, 0, 0), "load_after": (4.0, 0, 0), "startup_s": 50,
              "concurrency": 8, "limits": {"sst2": 10, "xsum": 4},
              "sides": {"sst2": {"evalkit-vllm": {"wall_s": 4.0, "predictions": ["a"] * 10},
                                 "lm-eval-vllm": {"wall_s": 10.0, "predictions": ["a"] * 9 + ["b"]},
                                 "evalkit-hf": {"wall_s": 2.0, "predictions": ["a"] * 10}},
                        "xsum": {"evalkit-vllm": {"wall_s": 8.0, "predictions": ["x", "y", "z", "w"]}}}}
    lines = markdown(report).splitlines()
    assert "| sst2 | evalkit-vllm | 4.0 | 5.00 | 1.00x | 10/10 |" in lines  # 20 requests in 4 s
    assert "| sst2 | lm-eval-vllm | 10.0 | 2.00 | 2.50x | 9/10 |" in lines
    assert "| sst2 | evalkit-hf | 2.0 | 10.00 | 0.50x | 10/10 |" in lines
    assert "| xsum | evalkit-vllm | 8.0 | 0.50 | 1.00x | - |" in lines
