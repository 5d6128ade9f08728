"""The peers a deployment declares, and the one question a relay asks: where does this session live?

Relay destinations come only from the deployment itself, never from what a client sends:

* `--num-procs` workers are the siblings the supervisor started; each listens on a private Unix
  socket `worker-<n>.sock` in a directory only the server's user can enter (`WorkerGroup`), and
  they sign hints with a key they share (`BOKEH_SECRET_KEY`, or a random one from the supervisor);
* separate instances relay to each other only when they share `BOKEH_SECRET_KEY`; an instance
  names itself by `--advertise-address` (default: its `--address`/`--port`), and a hint naming
  another instance is believed only with a valid signature under that key.

A token's hint is checked (`destination`) before anything in it is used: an unsigned, badly
signed, unparsable or unknown hint is ignored with one log line, and the session is then built
where the websocket landed. What comes out is a `Destination`: a Unix socket path this
deployment made, or a checked `HOST:PORT` — the relay itself chooses the path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aperture.security.owner_hints import OwnerHint, format_hint, parse_hint, sign_hint, verify_hint
from aperture.worker_loads import WorkerLoads

log = logging.getLogger("aperture.relay")

OWNER = "__ap_owner"
OWNER_SIG = "__ap_owner_sig"

HOP_INSTANCE = "instance"
"""`X-Aperture-Relay` value of a connection relayed between instances: only a worker hop may follow."""
HOP_WORKER = "worker"
"""`X-Aperture-Relay` value of a connection relayed to a sibling worker: it is never relayed again."""


@dataclass(frozen=True)
class WorkerGroup:
    """The worker processes of one `--num-procs` server, as the supervisor started them."""

    directory: str  # made by the supervisor, mode 0700
    count: int
    number: int  # this process's number
    key: bytes = field(repr=False)  # signs hints; BOKEH_SECRET_KEY or a random key of the supervisor's
    loads: WorkerLoads | None = field(default=None, repr=False, compare=False)  # open connections per worker

    def socket_path(self, number: int) -> str:
        return os.path.join(self.directory, f"worker-{number}.sock")


@dataclass(frozen=True)
class Destination:
    """A checked relay target: a sibling worker's Unix socket, or another instance's address."""

    unix_socket: str | None = None
    instance: str | None = None

    def __str__(self) -> str:
        return f"worker socket {self.unix_socket}" if self.unix_socket else f"instance {self.instance}"


class Peers:
    """This process's place in the deployment: its own identity, its siblings, the signing key."""

    def __init__(
        self,
        *,
        key: bytes | None,
        instance: str | None = None,
        workers: WorkerGroup | None = None,
        store: bool = False,
    ):
        self.key = key
        # Instances relay to each other only when the deployment declares them: a shared key (for
        # signed hints) or a session store (which records the owner of every session itself).
        self.instance = instance if key is not None or store else None
        self.workers = workers

    @property
    def identity(self) -> str:
        """How the session store names this process: its owner-hint text, `HOST:PORT|N`."""
        number = self.workers.number if self.workers else None
        if self.instance is None and number is None:
            return f"unix-{os.uname().nodename}-{os.getpid()}"  # reachable by nobody: never relayed to
        return format_hint(OwnerHint(self.instance, number))

    def destination_for_owner(self, owner: str, hop: str | None) -> Destination | None:
        """Where to relay a session whose owner the session store names (another process, or None)."""
        try:
            hint = parse_hint(owner)
        except ValueError:
            return None
        return self._destination(hint, hop)

    @property
    def relays(self) -> bool:
        return self.key is not None and (self.instance is not None or self.workers is not None)

    def hint_for(self, route: str, session_id: str) -> dict[str, str]:
        """Token fields naming this process as the builder of `session_id` (none if nobody relays)."""
        if self.key is None or not self.relays:
            return {}
        text = format_hint(OwnerHint(self.instance, self.workers.number if self.workers else None))
        return {OWNER: text, OWNER_SIG: sign_hint(self.key, route, session_id, text)}

    def destination(
        self, route: str, session_id: str, payload: Mapping[str, Any], hop: str | None
    ) -> Destination | None:
        """Where the session of a token was built, if that is another process of this deployment.

        `hop` is the `X-Aperture-Relay` value of the connection (None when it came from a client);
        it can only narrow what is allowed, so a client that sends it merely disables relaying.
        """
        if OWNER not in payload and OWNER_SIG not in payload:
            return None
        hint = self._checked_hint(route, session_id, payload)
        if hint is None:
            return None
        return self._destination(hint, hop)

    def _destination(self, hint: OwnerHint, hop: str | None) -> Destination | None:
        if hint.instance is not None and hint.instance != self.instance:
            if hop is not None:
                return None  # a relayed connection is never sent on to yet another instance
            return Destination(instance=hint.instance)
        if hint.worker is None or self.workers is None or hint.worker == self.workers.number:
            return None  # built by this process (or by this instance without workers)
        if hop == HOP_WORKER:
            return None
        if hint.worker >= self.workers.count:
            log.warning("Ignored an owner hint naming worker %d of %d", hint.worker, self.workers.count)
            return None
        return Destination(unix_socket=self.workers.socket_path(hint.worker))

    def _checked_hint(self, route: str, session_id: str, payload: Mapping[str, Any]) -> OwnerHint | None:
        text, signature = payload.get(OWNER), payload.get(OWNER_SIG)
        if self.key is None:
            log.warning("Ignored an owner hint for session %r: this server does not relay", session_id[:12])
            return None
        if not verify_hint(self.key, route, session_id, text, signature):
            log.warning("Ignored an owner hint for session %r: missing or bad signature", session_id[:12])
            return None
        try:
            return parse_hint(text)
        except ValueError:
            log.warning("Ignored an owner hint for session %r: not a valid hint", session_id[:12])
            return None
