import asyncio
import logging
import signal

from django.core.management.base import BaseCommand, CommandError

from calls.listener import run_listeners
from calls.models import Pbx

logger = logging.getLogger("calls.runami")


class Command(BaseCommand):
    help = (
        "Run the AMI listener in the foreground: one persistent AMI connection per enabled PBX. "
        "Events become calls, call events and live board updates; other processes' AMI actions "
        "are served here. A second instance waits as a standby. SIGTERM or Ctrl-C stops it."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("--pbx", action="append", default=[], help="Only this PBX (by name); repeatable.")

    def handle(self, *args: object, pbx: list[str], **options: object) -> None:
        pbxes = list(Pbx.objects.filter(enabled=True))
        if pbx:
            pbxes = [p for p in pbxes if p.name in pbx]
            missing = set(pbx) - {p.name for p in pbxes}
            if missing:
                raise CommandError(f"no enabled PBX named {', '.join(sorted(missing))}")
        if not pbxes:
            raise CommandError("no enabled PBX is configured; add one in the admin (Calls › PBXes)")
        self.stdout.write(f"AMI listener for {', '.join(str(p) for p in pbxes)}")
        asyncio.run(self._run(pbxes))

    async def _run(self, pbxes: list[Pbx]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_listeners(pbxes, stop)
        logger.info("AMI listener stopped")
