"""Database leases: singleton work (canary controller, drift monitor) runs in one replica at a time.

A lease is a row ``(name, holder, expires_at, epoch)``. A replica holds it while it renews it
before ``expires_at``; when the holder dies, the lease expires and another replica takes it
over (at most one TTL later). ``epoch`` grows on every change of holder: it is a fencing token
that work can record so a stale holder's late write can be told apart.

``repository`` holds the SQL (one conditional UPDATE, or an INSERT for a new lease);
``runner`` is the loop that acquires, renews and runs the work while the lease is held.
"""
