import asyncio
import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls.listener import LOCK_TTL, RECONCILE_INTERVAL, run_listeners
from calls.models import Pbx

logger = logging.getLogger("calls.runami")


class Command(BaseCommand):
    help = (
        "Run the AMI listener in the foreground: one persistent AMI connection per enabled PBX. "
        "Events become calls, call events and live board updates; other processes' AMI actions "
        "are served here. A second instance waits as a standby. SIGTERM or Ctrl-C stops it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pbx", action="append", default=[], help="Only this PBX (by name); repeatable.")
        parser.add_argument(
            "--lock-ttl",
            type=float,
            default=LOCK_TTL,
            help=f"Seconds a standby waits after the active instance died before taking over "
            f"(default {LOCK_TTL:.0f}).",
        )
        parser.add_argument(
            "--reconcile-interval",
            type=float,
            default=RECONCILE_INTERVAL,
            help=f"Seconds between checks of the open calls against Asterisk's live channels "
            f"(default {RECONCILE_INTERVAL:.0f}).",
        )

    def handle(self, *args: Any, pbx: list[str], lock_ttl: float, reconcile_interval: float, **options: Any) -> None:
        if lock_ttl < 1 or reconcile_interval < 1:
            raise CommandError("--lock-ttl and --reconcile-interval must be at least 1 second")
        pbxes = list(Pbx.objects.filter(enabled=True))
        if pbx:
            pbxes = [p for p in pbxes if p.name in pbx]
            missing = set(pbx) - {p.name for p in pbxes}
            if missing:
                raise CommandError(f"no enabled PBX named {', '.join(sorted(missing))}")
        if not pbxes:
            raise CommandError("no enabled PBX is configured; add one in the admin (Calls › PBXes)")
        self.stdout.write(f"AMI listener for {', '.join(str(p) for p in pbxes)}")
        asyncio.run(self._run(pbxes, lock_ttl=lock_ttl, reconcile_interval=reconcile_interval))

    async def _run(self, pbxes: list[Pbx], **kwargs: Any) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_listeners(pbxes, stop, **kwargs)
        logger.info("AMI listener stopped")
