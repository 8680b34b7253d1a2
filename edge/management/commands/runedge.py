import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from edge.service import EdgeConfig, EdgeService

logger = logging.getLogger("media.runedge")


class Command(BaseCommand):
    help = (
        "Run the SIP edge in the foreground: the UDP SIP endpoint that Asterisk reaches as the "
        "ccbridge trunk, and the ConnectyCube accounts of the mappings. Media goes to the Celery "
        "workers of the media queue. SIGTERM or Ctrl-C stops it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.EDGE_SIP_HOST, help="SIP bind address")
        parser.add_argument("--port", type=int, default=settings.EDGE_SIP_PORT, help="SIP UDP port")

    def handle(self, *args: object, host: str, port: int, **options: object) -> None:
        config = EdgeConfig(
            sip_host=host,
            sip_port=port,
            public_host=settings.EDGE_PUBLIC_HOST or None,
            redis_url=settings.REDIS_URL,
            media_start_timeout=settings.EDGE_MEDIA_START_TIMEOUT,
            ice_timeout=settings.EDGE_ICE_TIMEOUT,
        )
        asyncio.run(self._run(config))

    async def _run(self, config: EdgeConfig) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        service = EdgeService(config)
        await service.start()
        self.stdout.write(f"SIP edge on udp:{config.sip_host}:{config.sip_port}")
        try:
            await stop.wait()
        finally:
            await service.close()
            logger.info("edge stopped")
