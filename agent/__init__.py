"""The agent web app: the page agents answer department calls in, on the official ConnectyCube JS SDK."""
