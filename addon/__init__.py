"""The bridge: a mitmproxy addon that translates between LLM API formats (entry: addon/bridge.py)."""
