"""Alerts (docs/alerts.md): the alerter process (`service`, `appliance alerts`) and its two jobs.
`raising` reads the notable events the writers stored and raises, throttles and counts them by
alerts.yaml's rules (`profiles.alert_rules`); `delivery` tells the contacts through the outbox, by the
rota and the ladder (`profiles.escalation`), in the words of `messages`."""
