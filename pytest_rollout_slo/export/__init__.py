"""What a spec becomes after GA: Prometheus rules and a Grafana dashboard built from its gates.

Beside the data path: it reads the frozen spec model and writes files for other systems,
never queries a backend and never imports pytest. ``rules`` writes recording and alerting
rules that agree with the gates; ``dashboard`` builds a dashboard with Grafana's own
schema-generated builders; ``exportable`` says which objectives can be exported, and why not.
"""
