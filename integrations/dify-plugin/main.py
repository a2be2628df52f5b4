"""Entry point Dify's plugin runtime starts (``python -m main``)."""

from dify_plugin import DifyPluginEnv, Plugin

# A generation may wait on the gateway for minutes; Dify's own limits still apply on top.
plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=600))

if __name__ == "__main__":
    plugin.run()
