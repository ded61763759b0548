"""llmstream's load-test client: honest per-token measurements of SSE streams, for Locust.

`http11` reads each network chunk as it arrives; `apis` knows the three APIs' requests and events;
`kinds` runs one stream of each kind of user; `record` keeps what a stream measured and writes the raw
timelines; `shapes` is the load over time; `summary` turns a results folder into figures. Only
`loadtests/locustfile.py` imports Locust.
"""
