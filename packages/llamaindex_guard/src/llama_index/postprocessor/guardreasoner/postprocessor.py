"""A node postprocessor that drops (or flags) retrieved nodes whose text GuardReasoner finds harmful."""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.postprocessor.guardreasoner._common import text_or_none
from llama_index.postprocessor.guardreasoner._tracing import SPANS

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_VIOLATION_MESSAGE,
    Check,
    GuardProvider,
    aclassify_checks,
    check_violation_message,
    classify_checks,
    format_violation_message,
    is_violation,
)


class GuardReasonerNodePostprocessor(BaseNodePostprocessor):
    """Judge each retrieved node's text with GuardReasoner, in one ``classify_batch`` call per query.

    >>> engine = index.as_query_engine(node_postprocessors=[GuardReasonerNodePostprocessor(guard)])  # doctest: +SKIP

    A node's text (``get_content(metadata_mode)``, text only by default) is judged as the response to the
    query, so it is kept or dropped on the model's *response* label: is this text, given as an answer, harmful?
    Without a query it is judged alone, as a request. A node with no text (an image node) is kept unjudged. A
    verdict the guard's policy decided (unparseable output) drops the node under ``fail_closed`` and keeps it
    under ``fail_open``.

    ``mode="drop"`` (default) returns the safe nodes in their original order. ``mode="flag"`` keeps every
    node and returns copies whose ``metadata[flag_key]`` is True (harmful) or False; the key is excluded from
    the LLM's and the embedder's view of the metadata. ``mode="replace"`` (the shared vocabulary's
    ``"replace"`` on this surface) keeps every node in place, flagged as in ``"flag"``, with a harmful
    node's text replaced by ``violation_message`` (a template: ``{stage}`` is ``"node"``, ``{labels}``...),
    so the LLM reads the refusal where the harmful text was. The input nodes are never modified.

    The guard is ``guard=`` or built on first use from ``model=`` and the other keyword options. Each
    node's check is a ``GuardReasoner.node`` span of LlamaIndex's instrumentation under the postprocessing
    span, its verdict in a ``GuardReasonerVerdictEvent``.
    """

    mode: Literal["drop", "flag", "replace"] = Field(
        default="drop", description="Drop harmful nodes, flag them, or replace their text."
    )
    flag_key: str = Field(default="guardreasoner_harmful", description="Metadata key set in flag mode.")
    violation_message: str = Field(
        default=DEFAULT_VIOLATION_MESSAGE,
        description="What a harmful node says in replace mode (a template).",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.NONE, description="Which metadata the judged text includes."
    )
    _provider: GuardProvider = PrivateAttr()

    def __init__(
        self,
        guard: GuardReasoner | None = None,
        *,
        mode: Literal["drop", "flag", "replace"] = "drop",
        flag_key: str = "guardreasoner_harmful",
        violation_message: str = DEFAULT_VIOLATION_MESSAGE,
        metadata_mode: MetadataMode = MetadataMode.NONE,
        model: str | None = None,
        **guard_options: Any,
    ):
        super().__init__(
            mode=mode,
            flag_key=flag_key,
            violation_message=check_violation_message(violation_message),
            metadata_mode=metadata_mode,
        )
        self._provider = GuardProvider(guard, model, guard_options)

    @classmethod
    def class_name(cls) -> str:
        return "GuardReasonerNodePostprocessor"

    @property
    def guard(self) -> GuardReasoner:
        return self._provider.get()

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        judged, conversations = self._conversations(nodes, query_bundle)
        checks = [Check("node", *conversation) for conversation in conversations]
        verdicts = classify_checks(SPANS, self.guard, checks) if checks else []
        return self._result(nodes, judged, conversations, verdicts)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        judged, conversations = self._conversations(nodes, query_bundle)
        checks = [Check("node", *conversation) for conversation in conversations]
        verdicts = await aclassify_checks(SPANS, self.guard, checks) if checks else []
        return self._result(nodes, judged, conversations, verdicts)

    def _conversations(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[list[int], list[tuple[str, str | None]]]:
        query = text_or_none(query_bundle.query_str) if query_bundle is not None else None
        judged, conversations = [], []
        for index, node in enumerate(nodes):
            text = text_or_none(node.node.get_content(metadata_mode=self.metadata_mode))
            if text is None:
                continue
            judged.append(index)
            conversations.append((query, text) if query is not None else (text, None))
        return judged, conversations

    def _result(
        self,
        nodes: list[NodeWithScore],
        judged: list[int],
        conversations: list[tuple[str, str | None]],
        verdicts: list[Verdict],
    ) -> list[NodeWithScore]:
        by_index = dict(zip(judged, verdicts))
        harmful = {
            index: is_violation(verdict, judged_on="request" if response is None else "response")
            for index, (_, response), verdict in zip(judged, conversations, verdicts)
        }
        if self.mode == "drop":
            return [node for index, node in enumerate(nodes) if not harmful.get(index, False)]
        return [
            self._flagged(node, harmful[index], by_index[index]) if index in harmful else node
            for index, node in enumerate(nodes)
        ]

    def _flagged(self, node: NodeWithScore, harmful: bool, verdict: Verdict) -> NodeWithScore:
        inner = node.node
        hidden = lambda keys: [*keys, self.flag_key] if self.flag_key not in keys else list(keys)  # noqa: E731
        copy = inner.model_copy(
            update={
                "metadata": {**inner.metadata, self.flag_key: harmful},
                "excluded_llm_metadata_keys": hidden(inner.excluded_llm_metadata_keys),
                "excluded_embed_metadata_keys": hidden(inner.excluded_embed_metadata_keys),
            }
        )
        if harmful and self.mode == "replace":
            copy.set_content(format_violation_message(self.violation_message, verdict, "node"))
        return NodeWithScore(node=copy, score=node.score)
