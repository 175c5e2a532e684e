"""vLLM's offline engine behind two calls, as one engine or as data-parallel replicas in their own processes.

`prompt_logprobs(prompts)` gives, for each token-id prompt, (log p, rank) of every prompt token
after the first. `generate(jobs)` decodes greedily with stop sequences. Both take plain Python and
give plain Python, so the same calls work across a process boundary.

vLLM's own `data_parallel_size` needs one process per replica (`LLM(data_parallel_size=N)` refuses
to run in one process). With data_parallel_size=N, evalkit starts N spawned processes, each with
its own engine (on its own GPUs where there are GPUs: tensor_parallel_size x pipeline_parallel_size
each), deals them length-balanced shares of the prompts and puts the answers back in order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

Job = tuple[list[int], tuple[str, ...], int]  # prompt ids, stop sequences, max new tokens
Generated = tuple[str, int, "str | None"]  # text, generated tokens, the stop sequence that ended it


class Engine:
    """One vllm.LLM in this process."""

    def __init__(self, engine_args: dict[str, Any]):
        from vllm import LLM

        self.llm = LLM(**engine_args)

    def tokenizer(self):
        return self.llm.get_tokenizer()

    def prompt_logprobs(self, prompts: list[list[int]]) -> list[list[tuple[float, int]]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(prompt_logprobs=0, max_tokens=1, temperature=0.0, detokenize=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        answers = []
        for prompt, out in zip(prompts, outs):
            row = []
            for token, entry in zip(prompt[1:], out.prompt_logprobs[1:]):
                lp = entry[token]
                row.append((float(lp.logprob), int(lp.rank)))
            answers.append(row)
        return answers

    def generate(self, jobs: list[Job]) -> list[Generated]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [SamplingParams(temperature=0.0, max_tokens=max_new, stop=list(until) or None, skip_special_tokens=True)
                  for _, until, max_new in jobs]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids, _, _ in jobs], params, use_tqdm=False)
        answers: list[Generated] = []
        for (_, until, _), out in zip(jobs, outs):
            best = out.outputs[0]
            stop = best.stop_reason if isinstance(best.stop_reason, str) and best.stop_reason in until else None
            answers.append((best.text, len(best.token_ids), stop))
        return answers

    def close(self) -> None:
        shutdown = getattr(getattr(self.llm, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            shutdown()


def _replica(conn, engine_args: dict[str, Any], env: dict[str, str]) -> None:
    os.environ.update(env)
    try:
        engine = Engine(engine_args)
        conn.send(("ready", None))
    except Exception as err:  # noqa: BLE001 - reported to the parent in one line
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    while True:
        message = conn.recv()
        if message is None:
            engine.close()
            return
        method, payload = message
        try:
            conn.send(("ok", getattr(engine, method)(payload)))
        except Exception as err:  # noqa: BLE001
            conn.send(("error", f"{type(err).__name__}: {err}"))


class Replicas:
    """N engines in spawned processes; each call is split length-balanced and gathered in order."""

    def __init__(self, engine_args: dict[str, Any], n: int, gpus_per_replica: int, gpu_count: int):
        from ..errors import EvalkitError

        if gpu_count and n * gpus_per_replica > gpu_count:
            raise EvalkitError(f"data_parallel_size={n} x {gpus_per_replica} GPU(s) per replica needs "
                               f"{n * gpus_per_replica} GPUs; {gpu_count} visible")
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for r in range(n):
            env = {"CUDA_VISIBLE_DEVICES": ",".join(str(r * gpus_per_replica + g) for g in range(gpus_per_replica))} if gpu_count else {}
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_replica, args=(child, engine_args, env), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for r, conn in enumerate(self.conns):
            status, value = self._recv(r, conn)
            if status != "ready":
                self.close()
                raise EvalkitError(f"vllm data-parallel replica {r} failed to start: {value}")

    def _recv(self, r: int, conn) -> tuple[str, Any]:
        from ..errors import EvalkitError

        try:
            return conn.recv()
        except EOFError:
            raise EvalkitError(f"vllm data-parallel replica {r} died (exit code {self.procs[r].exitcode}); "
                               "the responses computed so far are in the response cache: run again to resume") from None

    def _call(self, method: str, items: list[Any], size) -> list[Any]:
        from ..errors import EvalkitError

        order = sorted(range(len(items)), key=lambda i: (-size(items[i]), i))
        shares = [order[r::len(self.conns)] for r in range(len(self.conns))]  # longest first, dealt round robin
        for conn, share in zip(self.conns, shares):
            conn.send((method, [items[i] for i in share]))
        out: list[Any] = [None] * len(items)
        for r, (conn, share) in enumerate(zip(self.conns, shares)):
            status, value = self._recv(r, conn)
            if status != "ok":
                raise EvalkitError(f"vllm data-parallel replica {r}: {value}")
            for i, answer in zip(share, value):
                out[i] = answer
        return out

    def prompt_logprobs(self, prompts: list[list[int]]) -> list[list[tuple[float, int]]]:
        return self._call("prompt_logprobs", prompts, len)

    def generate(self, jobs: list[Job]) -> list[Generated]:
        return self._call("generate", jobs, lambda job: len(job[0]) + job[2])

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
