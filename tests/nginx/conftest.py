from tests.stack import web_stack  # noqa: F401 - the session's one running app
