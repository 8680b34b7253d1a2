from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from mappings.groups import OPERATOR_GROUP, ensure_operator_group
from mappings.models import ConnectyCubeApp, Department, SipMapping

DEMO_APP_ID = 1
DEMO_AUTH_KEY = "demo-auth-key"
DEMO_ADMIN = ("admin", "ccbridge-demo")
DEMO_OPERATOR = ("operador", "ccbridge-demo")
# ConnectyCube users in the sandbox: the department's bridge account and two agents.
DEMO_BRIDGE = {"id": 2001, "login": "vendas", "password": "vendas-demo", "full_name": "Vendas"}
DEMO_AGENTS = [
    {"id": 2002, "login": "ana", "password": "ana-demo", "full_name": "Ana Souza"},
    {"id": 2003, "login": "bruno", "password": "bruno-demo", "full_name": "Bruno Lima"},
]


class Command(BaseCommand):
    help = (
        "Create the demo data of the embedded default: an admin, an operator, the Vendas "
        "department, a ConnectyCube app pointing at the local sandbox, sandbox users and the "
        "sip:vendas@empresa.com mapping. Safe to run again."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the web role (and so the sandbox) listens, as the agents' browsers reach it.",
        )

    @transaction.atomic
    def handle(self, *args: object, base_url: str, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates well-known passwords; it refuses to run in production.")
        base_url = base_url.rstrip("/")
        ws_url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        ensure_operator_group()
        User = get_user_model()

        admin, created = User.objects.get_or_create(
            username=DEMO_ADMIN[0], defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(DEMO_ADMIN[1])
            admin.save()
        operator, created = User.objects.get_or_create(username=DEMO_OPERATOR[0], defaults={"is_staff": True})
        if created:
            operator.set_password(DEMO_OPERATOR[1])
            operator.save()
        operator.groups.add(Group.objects.get(name=OPERATOR_GROUP))

        vendas, _ = Department.objects.get_or_create(slug="vendas", defaults={"name": "Vendas"})
        vendas.operators.add(operator)

        app, _ = ConnectyCubeApp.objects.update_or_create(
            name="Sandbox (local)",
            defaults={
                "app_id": DEMO_APP_ID,
                "auth_key": DEMO_AUTH_KEY,
                "api_url": f"{base_url}/cc-sandbox/api",
                "chat_url": f"{ws_url}/cc-sandbox/chat/",
                "chat_domain": "localhost",
            },
        )
        mapping = SipMapping.objects.filter(sip_uri="sip:vendas@empresa.com").first()
        if mapping is None:
            mapping = SipMapping(sip_uri="sip:vendas@empresa.com")
        mapping.department = vendas
        mapping.app = app
        mapping.display_name = "Vendas"
        mapping.cc_login = DEMO_BRIDGE["login"]
        mapping.cc_password = DEMO_BRIDGE["password"]
        mapping.cc_user_id = DEMO_BRIDGE["id"]
        mapping.agents = [a["id"] for a in DEMO_AGENTS]
        mapping.save()

        self._seed_sandbox_users()
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  admin login:    {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")
        self.stdout.write(f"  operator login: {DEMO_OPERATOR[0]} / {DEMO_OPERATOR[1]} (department Vendas)")
        agents = ", ".join(f"{a['login']} / {a['password']} (id {a['id']})" for a in DEMO_AGENTS)
        self.stdout.write(f"  sandbox agents: {agents}")

    def _seed_sandbox_users(self) -> None:
        try:
            SandboxUser = apps.get_model("sandbox", "SandboxUser")
        except LookupError:
            return
        for user in [DEMO_BRIDGE, *DEMO_AGENTS]:
            obj = SandboxUser.objects.filter(pk=user["id"]).first() or SandboxUser(pk=user["id"])
            obj.login = user["login"]
            obj.full_name = user["full_name"]
            obj.set_password(user["password"])
            obj.save()
