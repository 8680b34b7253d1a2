"""REST routes of the sandbox, mounted under /cc-sandbox/api/ when CONNECTYCUBE_SANDBOX is on."""

urlpatterns: list = []
