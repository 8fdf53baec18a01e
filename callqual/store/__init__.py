"""The call store: calls, streams, interval reports, alerts and SIP messages in SQLite or PostgreSQL.

``engine.open_store`` opens and migrates a store, ``writer.StoreWriter`` fills it (from
``embedded.analyze_into_store`` or the Kafka ``callqual store`` service), ``queries``
searches it. ``rows`` (wire model -> row) is pure; everything else talks to the database.
"""
