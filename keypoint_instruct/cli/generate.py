"""``generate``, ``batch submit|status|collect`` and ``cache stats|merge``: the teacher stage of the pipeline."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from keypoint_instruct.cli.argtypes import count, positive_float
from keypoint_instruct.cli.endpoint import TEACHER_BASE_URL_HELP, add_base_url_option, quiet_http_logs
from keypoint_instruct.errors import UsageError
from keypoint_instruct.offline_teacher import MODEL as OFFLINE_MODEL

log = logging.getLogger(__name__)

TASK_CHOICES = ("conversation", "detailed_description", "complex_reasoning", "all")
CONTEXT_CHOICES = ("paper", "paper+facts")


# --------------------------------------------------------------------------- options


def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose which requests a command covers (shared by generate and batch submit)."""
    parser.add_argument("--task", required=True, choices=TASK_CHOICES, help="task to generate, or all three")
    parser.add_argument("--coco-root", required=True, type=Path, help="COCO folder holding annotations/")
    parser.add_argument("--split", required=True, help="COCO split, e.g. train2017 or val2014")
    parser.add_argument("--cache", required=True, type=Path, help="SQLite response cache (created if missing)")
    parser.add_argument("--model", default=None, help="teacher model (default: the pinned gpt-4o-2024-08-06)")
    parser.add_argument(
        "--context",
        default="paper",
        choices=CONTEXT_CHOICES,
        help="context format: the paper's, or with pose facts (default: %(default)s)",
    )
    parser.add_argument("--limit", type=count(1), default=None, help="use only the first N selected images")
    parser.add_argument(
        "--shard", type=_shard, default=None, metavar="I/N", help="take every N-th selected image, starting at I"
    )


def add_claim_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--claim-lease",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long this run's claim on a request it is sending lasts unless renewed (renewed every quarter of "
        "it while the run is alive); another run on the same cache skips claimed requests. A run killed outright "
        "in a container with its own process ids holds its requests this long; on this machine its claims are "
        "taken over at once. Runs on different machines must not share one cache file (SQLite needs one host): "
        "give each a --shard and its own cache, then `cache merge` (default: %(default)s)",
    )


SUBMIT_BASE_URL_HELP = (
    "OpenAI-compatible endpoint with the Batch API, http(s)://host[:port]/v1; a query string such as "
    "?api-version=... is sent with every request; recorded with each batch (never the key) for `batch status`, "
    "`collect`, `cancel` and `forget`; default api.openai.com"
)
RECORDED_BASE_URL_HELP = (
    "the endpoint to ask about the batches; default: for each batch, the --base-url it was submitted with "
    "(recorded in the cache, never the key; api.openai.com when it had none, and for batches submitted before "
    "the cache recorded it). Given, it is asked for every batch, e.g. when the server has moved"
)


def add_endpoint_options(parser: argparse.ArgumentParser, help_text: str = TEACHER_BASE_URL_HELP) -> None:
    """--base-url (with ``help_text``) and --request-timeout."""
    add_base_url_option(parser, help_text)
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=600.0,
        help="seconds before one request is abandoned and retried; the provider may still bill an abandoned "
        "request, so keep it well above the longest answer time (default: %(default)s)",
    )


def register(subparsers) -> None:
    gen = subparsers.add_parser(
        "generate",
        help="ask the teacher for every selected image and task; answers go to the response cache",
        description="Send one teacher request per selected image and task. Answers already in the cache are never "
        "sent again; each answer is saved the moment it arrives. Several runs may share one cache: a request another "
        "run is sending is skipped (rerun later for it). The key comes from OPENAI_API_KEY. Exit status 1 "
        "when some requests were given up after --max-attempts (run the same command again to retry only those) or "
        "the --max-cost cap was reached part-way (rerun with a higher cap); 2, with one line and nothing sent, when "
        "the endpoint refuses the key or does not know the model, or --max-cost cannot pay for even the first "
        "request to send. Ctrl-C stops cleanly: nothing "
        "new is sent, requests in flight may finish (up to 30 s), the summary is printed, exit status 130.",
    )
    add_selection_options(gen)
    add_endpoint_options(gen)
    gen.add_argument(
        "--teacher",
        default="openai",
        choices=("openai", "offline"),
        help="openai: any OpenAI-compatible endpoint; offline: the deterministic pose-facts teacher (no key)",
    )
    gen.add_argument(
        "--concurrency", type=count(1), default=32, help="requests in flight at once (default: %(default)s)"
    )
    gen.add_argument(
        "--rpm",
        type=positive_float,
        default=None,
        help="requests per minute allowed (default: what the endpoint's x-ratelimit headers say, else none)",
    )
    gen.add_argument(
        "--tpm",
        type=positive_float,
        default=None,
        help="tokens per minute allowed, counting prompt + output limit (default: as for --rpm)",
    )
    gen.add_argument(
        "--max-attempts",
        type=count(1),
        default=5,
        help="attempts per request before giving up (default: %(default)s)",
    )
    gen.add_argument(
        "--dry-run", action="store_true", help="print requests still to send, estimated tokens and cost; send nothing"
    )
    gen.add_argument(
        "--max-cost",
        type=positive_float,
        default=None,
        metavar="USD",
        help="spend cap of this run in dollars: a request is sent only while the money spent so far plus the worst "
        "case of every request in flight (all prompt tokens plus the output limit, at the model's price) stays "
        "within it; a request that does not fit waits for those in flight to end (their real cost replaces their "
        "worst case). When nothing is in flight and the next request still does not fit, nothing more is sent and "
        "the run exits with status 1: rerun with a higher cap (or none) to continue; nothing paid is lost or "
        "sent again. A cap below the worst case of the first request to send, or a model without a price in "
        "pricing.json: one line, nothing sent, exit 2",
    )
    add_claim_option(gen)
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)

    batch = subparsers.add_parser("batch", help="the OpenAI Batch API (half price, answers within 24 h)")
    batch_sub = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    submit = batch_sub.add_parser(
        "submit",
        help="upload the requests not yet cached as batch files and create batches",
        description="Write the selected requests that have no cached answer as Batch API JSONL (custom_id = cache "
        "key), upload them and create batches; the batch ids are recorded in the cache. A request's key is recorded "
        "before its batch is created, so a submit killed meanwhile leaves it pending (never sent by `generate`); the "
        "next `batch submit`, `status` or `collect` asks the provider which batch it made and records it, or frees "
        "the requests, with one line on stderr.",
    )
    add_selection_options(submit)
    add_endpoint_options(submit, SUBMIT_BASE_URL_HELP)
    add_claim_option(submit)
    submit.add_argument(
        "--out-dir", type=Path, default=None, help="where to keep the JSONL files (default: beside the cache)"
    )
    submit.add_argument(
        "--max-cost",
        type=positive_float,
        default=None,
        metavar="USD",
        help="the most this submit may commit, in dollars at the Batch price: requests are taken in selection "
        "order while the worst case of those taken (all prompt tokens plus the output limit) stays within it; "
        "the rest are left for a later submit and the exit status is 1. The bill is what the answers really use, "
        "usually well under the worst case. A cap below the worst case of the first request to submit, or a model "
        "without a price in pricing.json: one line, nothing submitted, exit 2",
    )
    submit.set_defaults(func=cmd_batch_submit)
    status = batch_sub.add_parser("status", help="show the state of the batches recorded in a cache")
    status.add_argument("--cache", required=True, type=Path, help="the response cache the batches were submitted from")
    add_endpoint_options(status, RECORDED_BASE_URL_HELP)
    status.set_defaults(func=cmd_batch_status)
    collect = batch_sub.add_parser("collect", help="download finished batches into the cache (exactly once)")
    collect.add_argument(
        "--cache", required=True, type=Path, help="the response cache the batches were submitted from"
    )
    add_endpoint_options(collect, RECORDED_BASE_URL_HELP)
    collect.set_defaults(func=cmd_batch_collect)
    cancel = batch_sub.add_parser(
        "cancel",
        help="ask the provider to stop a batch; `batch collect` then keeps what it finished and frees the rest",
        description="Ask the provider to cancel a batch recorded in the cache. It ends as cancelled with the answers "
        "it finished; run `batch collect` then: they are saved, and the requests it did not answer become free to "
        "send again with `generate` or `batch submit`. A batch id the cache does not record: one line, exit 2.",
    )
    _add_batch_id_options(cancel)
    cancel.set_defaults(func=cmd_batch_cancel)
    forget = batch_sub.add_parser(
        "forget",
        help="give up on a batch the provider no longer knows, so its requests can be sent again",
        description="For a batch the provider has lost (it answers 404): mark it forgotten in the cache, so its "
        "requests without an answer are no longer pending and `generate` or `batch submit` may send them. Answers "
        "already in the cache stay, and `batch status` still lists the batch, as forgotten. Refused (one line, exit "
        "2) while the provider still reports the batch, running or ended: `batch cancel` or `batch collect` it, or "
        "pass --force.",
    )
    _add_batch_id_options(forget)
    forget.add_argument(
        "--force",
        action="store_true",
        help="forget it although the provider still reports it: its requests may be sent again while it still "
        "answers them (paid twice); `batch collect` keeps the answers it delivers once it has ended",
    )
    forget.set_defaults(func=cmd_batch_forget)

    cache = subparsers.add_parser("cache", help="inspect or merge response caches")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    stats = cache_sub.add_parser("stats", help="counts by task, model and status; tokens; money spent")
    stats.add_argument("--cache", required=True, type=Path, help="the response cache to describe")
    stats.set_defaults(func=cmd_cache_stats)
    merge = cache_sub.add_parser("merge", help="join the caches of shards into one file")
    merge.add_argument("out", type=Path, help="cache to merge into (created if missing)")
    merge.add_argument("inputs", type=Path, nargs="+", help="caches to copy from")
    merge.set_defaults(func=cmd_cache_merge)


# --------------------------------------------------------------------------- selection


def select_requests(args: argparse.Namespace, *, offline: bool = False):
    """The requests chosen by the selection options, in image-id order, task by task."""
    from keypoint_instruct.coco import load_scenes
    from keypoint_instruct.context import select_scenes
    from keypoint_instruct.prompts import TASKS
    from keypoint_instruct.teacher import DEFAULT_MODEL, GenerationSettings, build_requests

    if offline and args.model and args.model != OFFLINE_MODEL:
        raise UsageError(f"--teacher offline answers as model {OFFLINE_MODEL!r}; drop --model {args.model}")
    model = OFFLINE_MODEL if offline else (args.model or DEFAULT_MODEL)
    settings = GenerationSettings(model=model)
    scenes = select_scenes(load_scenes(args.coco_root, args.split).values(), limit=args.limit)
    if args.shard:
        index, count = args.shard
        scenes = scenes[index::count]
    tasks = TASKS if args.task == "all" else (args.task,)
    requests = []
    for task in tasks:
        requests.extend(build_requests(scenes, task, settings, args.context, args.split))
    log.info("%d images selected, %d requests", len(scenes), len(requests))
    return requests


def _open_cache(path: Path, *, create: bool):
    from keypoint_instruct.cache import ResponseCache

    return ResponseCache(path, create=create)


# --------------------------------------------------------------------------- generate


def cmd_generate(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    offline = args.teacher == "offline"
    if offline and args.base_url:
        raise UsageError("--base-url is for --teacher openai; the offline teacher needs no endpoint")
    requests = select_requests(args, offline=offline)
    if args.max_cost is not None:  # before anything is created or sent
        from keypoint_instruct.budget import check_enforceable

        check_enforceable(requests, args.max_cost)
    if args.dry_run:
        return _dry_run(args, requests)

    from keypoint_instruct.engine import EngineSettings, RunInterrupted, run

    settings = EngineSettings(
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        max_attempts=args.max_attempts,
        progress=not args.no_progress,
        claim_lease_s=args.claim_lease,
        max_cost_usd=args.max_cost,
    )
    teacher = _make_teacher(args, offline)
    with _open_cache(args.cache, create=True) as cache:
        if args.max_cost is not None:
            _check_first_fits(cache, requests, args.max_cost)
        try:
            summary = run(teacher, requests, cache, settings)
        except RunInterrupted as stop:
            print(stop.summary.line())
            print(
                f"keypoint-instruct: interrupted; the {stop.summary.answered} answers of this run are saved in "
                f"{args.cache}: run the same command again to send only the rest",
                file=sys.stderr,
            )
            return 130
    if summary.capped and summary.attempts == 0:  # another run took the request checked above: the same error
        from keypoint_instruct.budget import below_one_request

        raise below_one_request(args.max_cost, summary.refused_usd)
    print(summary.line())
    _say_claimed_elsewhere(summary.claimed_elsewhere)
    if summary.capped:
        abandoned = (
            f" plus up to ${summary.possibly_billed_usd:.4f} for {summary.abandoned} attempt"
            f"{'s' if summary.abandoned != 1 else ''} abandoned without an answer (the provider may bill them),"
            if summary.abandoned
            else ""
        )
        print(
            f"keypoint-instruct: the --max-cost cap of ${args.max_cost:g} was reached: ${summary.cost_usd:.4f} "
            f"spent in this run,{abandoned} {summary.not_sent} requests left; every answer paid for is saved: rerun "
            "with a higher --max-cost (or none) to continue",
            file=sys.stderr,
        )
    return 0 if summary.gave_up == 0 and not summary.capped else 1


def _say_claimed_elsewhere(n: int) -> None:
    if n:
        print(
            f"keypoint-instruct: {n} request{'s are' if n != 1 else ' is'} being sent by another run on this cache; "
            "rerun later for them",
            file=sys.stderr,
        )


def _make_teacher(args: argparse.Namespace, offline: bool):
    if offline:
        from keypoint_instruct.offline_teacher import OfflineTeacher

        return OfflineTeacher()
    from keypoint_instruct.teacher import DEFAULT_MODEL, OpenAITeacher

    return OpenAITeacher(args.model or DEFAULT_MODEL, base_url=args.base_url, timeout_s=args.request_timeout)


def _not_to_send(cache, requests) -> tuple[set[str], set[str], set[str]]:
    """Keys a run would leave out now (reads only): answered, waiting in a batch, being sent by another run."""
    from keypoint_instruct.batch_jobs import BatchJobs
    from keypoint_instruct.claims import Claims

    keys = {r.key for r in requests}
    answered = cache.answered(keys)
    in_batch = BatchJobs(cache).pending_among(keys - answered)
    claimed: set[str] = set()
    if cache.schema_version >= 2:  # an older read-only cache has no claims
        claimed = Claims(cache).held_elsewhere(keys - answered - in_batch)
    return answered, in_batch, claimed


def _check_first_fits(cache, requests, cap_usd: float) -> None:
    """A cap below the worst case of the first request the run would send is a usage error: nothing is sent."""
    from keypoint_instruct.budget import below_one_request, worst_case_usd

    skipped = set().union(*_not_to_send(cache, requests))
    first = next((r for r in requests if r.key not in skipped), None)
    if first is not None and worst_case_usd(first) > cap_usd:
        raise below_one_request(cap_usd, worst_case_usd(first))


def _dry_run(args: argparse.Namespace, requests) -> int:
    from keypoint_instruct import pricing

    answered: set[str] = set()
    in_batch: set[str] = set()
    claimed: set[str] = set()
    if args.cache.exists():
        with _open_cache(args.cache, create=False) as cache:
            answered, in_batch, claimed = _not_to_send(cache, requests)
    skipped = answered | in_batch | claimed
    unique = {r.key: r for r in requests if r.key not in skipped}
    todo = list(unique.values())
    estimate = pricing.estimate_requests(todo)
    print(
        f"requests selected: {len(requests)}; already cached: {len(answered)}; waiting in a batch: {len(in_batch)}; "
        + (f"being sent by another run: {len(claimed)}; " if claimed else "")
        + f"to send: {len(todo)}"
    )
    print(pricing.format_estimate(estimate))
    return 0


# --------------------------------------------------------------------------- batch


def _batch_client(args: argparse.Namespace, base_url: str | None = None):
    """The client of ``base_url`` (default: ``--base-url``)."""
    import openai

    from keypoint_instruct.teacher import client_options, resolve_api_key

    url = base_url or args.base_url
    key = resolve_api_key(url, offline_hint=False)
    options = client_options(url, key)
    options.pop("default_headers", None)  # only the query part: Azure's batch key handling is not supported here
    return openai.OpenAI(api_key=key, timeout=args.request_timeout, **options)


class _RecordedEndpoints:
    """The batch commands after submit: ``--base-url`` when given, else each batch's recorded one; a client per URL."""

    def __init__(self, args: argparse.Namespace, cache) -> None:
        from keypoint_instruct.batch_jobs import BatchJobs

        self.args = args
        self.jobs = BatchJobs(cache)
        self._clients: dict[str | None, object] = {}

    def url(self, row: dict | None) -> str | None:
        if self.args.base_url is not None or row is None:
            return self.args.base_url
        return row["base_url"]

    def client_for(self, row: dict | None):
        url = self.url(row)
        if url not in self._clients:
            self._clients[url] = _batch_client(self.args, url)
        return self._clients[url]

    def default(self):
        """For what concerns no one batch (an interrupted submit's lookups): the newest batch's endpoint."""
        rows = self.jobs.rows()
        return self.client_for(rows[-1] if rows else None)


def cmd_batch_submit(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct import batch

    requests = select_requests(args)
    if args.max_cost is not None:  # before the cache is created
        from keypoint_instruct.budget import check_enforceable

        check_enforceable(requests, args.max_cost)
    with _open_cache(args.cache, create=True) as cache:
        out_dir = args.out_dir or args.cache.parent / f"{args.cache.stem}_batches"
        result = batch.submit(
            _batch_client(args),
            requests,
            cache,
            out_dir,
            claim_lease_s=args.claim_lease,
            max_cost_usd=args.max_cost,
            base_url=args.base_url,
        )
    _say_notes(result.notes)
    print(result)
    _say_claimed_elsewhere(result.claimed_elsewhere)
    return 1 if result.over_cap else 0


def _say_notes(notes: list[str]) -> None:
    """One stderr line per interrupted earlier submit that a batch command resolved (recorded or freed)."""
    for note in notes:
        print(f"keypoint-instruct: {note}", file=sys.stderr)


def _add_batch_id_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch_id", metavar="BATCH_ID", help="the batch, as `batch status` lists it")
    parser.add_argument("--cache", required=True, type=Path, help="the response cache the batch was submitted from")
    add_endpoint_options(parser, RECORDED_BASE_URL_HELP)


def _open_batch_cache(path: Path):
    """The cache ``batch submit`` recorded its batches in; a missing one says which command writes it."""
    if not path.is_file():
        from keypoint_instruct.errors import InputNotFoundError

        raise InputNotFoundError(
            f"response cache {path} does not exist; run `keypoint-instruct batch submit` first "
            "or check the --cache path"
        )
    return _open_cache(path, create=False)


def cmd_batch_status(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct import batch

    with _open_batch_cache(args.cache) as cache:
        endpoints = _RecordedEndpoints(args, cache)
        report = batch.status(endpoints.default(), cache, client_for=endpoints.client_for)
    _say_notes(report.notes)
    print(report)
    return 0


def cmd_batch_collect(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct import batch

    with _open_batch_cache(args.cache) as cache:
        endpoints = _RecordedEndpoints(args, cache)
        result = batch.collect(endpoints.default(), cache, client_for=endpoints.client_for)
    _say_notes(result.notes)
    print(result)
    return 0


def cmd_batch_cancel(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct import batch_cancel

    with _open_batch_cache(args.cache) as cache:
        print(batch_cancel.cancel(_RecordedEndpoints(args, cache).client_for, cache, args.batch_id))
    return 0


def cmd_batch_forget(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct import batch_cancel

    with _open_batch_cache(args.cache) as cache:
        client_for = _RecordedEndpoints(args, cache).client_for
        print(batch_cancel.forget(client_for, cache, args.batch_id, force=args.force))
    return 0


# --------------------------------------------------------------------------- cache


def cmd_cache_stats(args: argparse.Namespace) -> int:
    with _open_cache(args.cache, create=False) as cache:
        stats = cache.stats()
    header = ("task", "model", "status", "responses", "prompt_tok", "cached_tok", "completion_tok", "usd")
    rows = [
        (
            r["task"],
            r["model"],
            r["status"],
            r["responses"],
            r["prompt_tokens"],
            r["cached_tokens"],
            r["completion_tokens"],
            f"{r['cost_usd']:.4f}",
        )
        for r in stats.rows
    ]
    rows.append(
        (
            "total",
            "",
            "",
            stats.responses,
            stats.prompt_tokens,
            stats.cached_tokens,
            stats.completion_tokens,
            f"{stats.cost_usd:.4f}",
        )
    )
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    out = sys.stdout
    for row in (header, *rows):
        out.write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(
        f"cached-token share of prompt tokens: {stats.cached_share:.1%}\n"
        f"failed attempts: {stats.failed_attempts}; keys failed and never answered: {stats.unanswered_keys}\n"
        f"money spent: ${stats.cost_usd:.4f}\n"
    )
    return 0


def cmd_cache_merge(args: argparse.Namespace) -> int:
    from keypoint_instruct.cache import check_merge_inputs

    check_merge_inputs(args.out, args.inputs)  # a bad input fails before the output file is created
    created = not args.out.exists()
    try:
        with _open_cache(args.out, create=True) as cache:
            counts = cache.merge(args.inputs)
    except BaseException:
        if created:  # never leave an empty cache behind; a cache that was there before stays
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.out}{suffix}").unlink(missing_ok=True)
        raise
    print(
        f"merged {len(args.inputs)} caches into {args.out}: {counts['added']} responses added, "
        f"{counts['already_present']} already present ({counts['conflicts']} with a different text: kept the "
        f"existing, except {counts['upgraded']} cut or filtered answers replaced by complete ones), "
        f"{counts['failures_added']} failure records added"
    )
    if counts["paid_twice_usd"] > 0:
        print(
            f"note: some keys were answered separately in more than one cache; ${counts['paid_twice_usd']:.4f} "
            "was paid twice (did shards overlap?)"
        )
    return 0
