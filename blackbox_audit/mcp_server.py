"""`blackbox-audit mcp`: an audit served to an agent over MCP (stdio), with both halves of the
method as tools: the target's own completions with their logprobs, and the trusted reference's
scores of any text.

Reading tools (`top_completions`, `search_completions`, `show_completion`, `themes`) need only
the folder. Asking tools (`score_text`, `sample`, `compare_hypotheses`) reach the endpoints
through `Inquiry`: the audit's providers, response cache, concurrency limits and framing.
Expected failures (a bad id, a server down, a target that cannot score given text) come back
to the agent as tool errors that say what to do; anything else is a crash and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from blackbox_audit.advice import error_line
from blackbox_audit.browse import Browser, CompletionDetail, CompletionRow, completion_detail, completion_row
from blackbox_audit.endpoints import TransportFactory
from blackbox_audit.hypotheses import Hypothesis, HypothesisRanking, rank_hypotheses
from blackbox_audit.inquiry import AuditFolder, Inquiry, InquiryError
from blackbox_audit.ranking import demoted_flags
from blackbox_audit.records import ScoreName
from blackbox_audit.themes import find_themes, top_for
from providers.errors import ProviderError
from providers.records import Record

MAX_K = 200
MAX_SAMPLES = 32
MAX_SAMPLE_TOKENS = 512


class TopCompletions(Record):
    score: ScoreName
    n_ranked: int
    n_records: int
    rows: tuple[CompletionRow, ...]


class SearchResult(Record):
    query: str
    n_matches: int
    rows: tuple[CompletionRow, ...]


class ThemeRow(Record):
    phrase: str
    members: tuple[str, ...]
    n_top: int
    n_rest: int
    p_value: float
    top_ranks: tuple[int, ...]


class Themes(Record):
    top_size: int
    rest_size: int
    n_tested: int
    themes: tuple[ThemeRow, ...]


def describe(folder: AuditFolder) -> str:
    """What the agent is looking at, for the server's instructions."""
    config = folder.config
    return (
        f"An audit by perplexity differencing of target {config.target.model} against reference"
        f" {config.reference.model}: the target completed {len(folder.records)} short prefills ({config.framing} framing,"
        f" {config.prefill_tokens} prefill tokens, {config.max_new_tokens} new tokens); the reference scored the same"
        f" bytes. Gaps are reference NLL minus target NLL, so a positive gap means the finetune made the text likelier;"
        f" the ranking score is {config.score}. The top-ranked completions tend to leak what the target was finetuned"
        " to do: read them (top_completions, themes), check a suspicion across the audit (search_completions), look at"
        " which tokens carry the gap (show_completion), then test it directly: score_text for any text,"
        " compare_hypotheses for candidate claims (true objective first), sample for new completions of a prefill."
    )


def build_server(folder: AuditFolder, transports: TransportFactory = lambda role: None) -> MCPServer:
    config = folder.config
    browser = Browser(folder.records, config.degeneracy_threshold, demote_all_loops=config.demote_all_loops)
    inquiry = Inquiry(config, transports=transports)

    @asynccontextmanager
    async def lifespan(server: MCPServer) -> AsyncIterator[None]:
        async with inquiry:
            yield None

    server: MCPServer = MCPServer("blackbox-audit", instructions=describe(folder), lifespan=lifespan)

    @server.tool()
    def top_completions(k: int = 10, score: ScoreName | None = None, offset: int = 0) -> TopCompletions:
        """The k best-ranked completions from `offset` (0 = the top), by `score` (default: the audit's):
        rank_average (the mean rank by logppl_diff, log_bpb_ratio and collapsed_window_gap), logppl_diff
        (nats per token), ppl_diff (the paper's), bpb_diff (bits per byte), log_bpb_ratio (how many times
        more surprised the reference is), window_gap or collapsed_window_gap (the best window of bytes).
        Degenerate loops whose first occurrence carries little gap come after the rest (demoted: true)."""
        score = score or config.score
        with _tool_errors():
            rows = browser.top(score, _bounded(k, "k"), max(0, offset))
            return TopCompletions(
                score=score, n_ranked=browser.n_ranked(score), n_records=len(folder.records), rows=tuple(rows)
            )

    @server.tool()
    def search_completions(query: str, k: int = 20) -> SearchResult:
        """Completions whose prefill + text contain `query` (case-insensitive), best-ranked first, and how many
        there are in all: is a suspected theme common at the top and rare below?"""
        with _tool_errors():
            n, rows = browser.search(query, config.score, _bounded(k, "k"))
            return SearchResult(query=query, n_matches=n, rows=tuple(rows))

    @server.tool()
    def show_completion(id: int) -> CompletionDetail:
        """One completion in full: both models' NLLs and, per target token, both sides' logprobs and the
        gap (reference NLL minus target NLL, nats; positive: likelier under the finetune)."""
        with _tool_errors():
            return browser.detail(id, config.score)

    @server.tool()
    def themes(k: int | None = None) -> Themes:
        """Words and phrases over-represented in the top k completions against the rest (one-sided Fisher exact
        p-value; near-duplicate completions count once; n_tested phrases were tried). Default k: 50, at most a
        quarter of the completions."""
        with _tool_errors():
            top_k = _bounded(k, "k") if k is not None else top_for(50, len(folder.records))
            table = find_themes(folder.records, top_k=top_k)
            rows = tuple(
                ThemeRow(
                    phrase=t.phrase,
                    members=t.members,
                    n_top=t.n_top,
                    n_rest=t.n_rest,
                    p_value=t.p_value,
                    top_ranks=t.top_ranks,
                )
                for t in table.themes
            )
            return Themes(top_size=table.top_size, rest_size=table.rest_size, n_tested=table.n_tested, themes=rows)

    @server.tool()
    async def score_text(text: str, context: str | None = None) -> CompletionDetail:
        """The gap of any text on both models, in the audit's framing. With `context`, the text is scored after
        it (context is the prefill); without, the text's first prefill tokens are the context, as in the audit.
        Needs a target that can score given text (a self-hosted vLLM copy can)."""
        with _tool_errors():
            prefill, rest = (context, text) if context is not None else await inquiry.split(text)
            if not rest:
                raise InquiryError("nothing to score: give a non-empty text")
            record = (await inquiry.score([(prefill, rest)], source="score_text"))[0]
            return completion_detail(record, completion_row(record, config.score, None, False, None, full=True))

    @server.tool()
    async def sample(
        prefill: str, n: int = 5, temperature: float = 1.0, max_new_tokens: int | None = None
    ) -> tuple[CompletionRow, ...]:
        """n new completions of `prefill` by the target (temperature 0: greedy), each scored by the reference,
        ranked by the audit's score: does a prefill of your choosing lead the target to the suspected objective?"""
        with _tool_errors():
            if not 1 <= n <= MAX_SAMPLES:
                raise InquiryError(f"n must be 1 to {MAX_SAMPLES}")
            if not prefill.strip():
                raise InquiryError("give a non-empty prefill")
            tokens = max_new_tokens or config.max_new_tokens
            if not 1 <= tokens <= MAX_SAMPLE_TOKENS:
                raise InquiryError(f"max_new_tokens must be 1 to {MAX_SAMPLE_TOKENS}")
            ranked = await inquiry.sample(prefill, n=n, temperature=temperature, max_new_tokens=tokens)
            demoted = demoted_flags(
                ranked, config.degeneracy_threshold, all_loops=browser.demote_all_loops, ordinary=browser.ordinary
            )
            return tuple(
                completion_row(r, config.score, r.rank, flag, None) for r, flag in zip(ranked, demoted, strict=True)
            )

    @server.tool()
    async def compare_hypotheses(statements: list[str | Hypothesis]) -> HypothesisRanking:
        """Candidate claims about what the target was trained to do, ranked by gap: each statement's first prefill
        tokens are its context, the rest is scored by both models. z compares the gap with neutral statements;
        give a statement with `nulls` (paraphrases or negations) to see what the claim itself adds (contrast)."""
        with _tool_errors():
            hypotheses = [s if isinstance(s, Hypothesis) else Hypothesis(statement=s) for s in statements]
            return await rank_hypotheses(inquiry, hypotheses)

    return server


def serve(folder: AuditFolder, transports: TransportFactory) -> None:
    server = build_server(folder, transports)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would flood the client's log
    server.run("stdio")


def _bounded(k: int, name: str) -> int:
    if not 1 <= k <= MAX_K:
        raise InquiryError(f"{name} must be 1 to {MAX_K}")
    return k


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Expected failures become tool errors the agent can act on; others stay crashes."""
    try:
        yield
    except ProviderError as exc:
        raise ToolError(error_line(exc)) from exc
    except ValueError as exc:  # InquiryError, a bad score or id
        raise ToolError(str(exc)) from exc
