"""Live apply: change a running Envoy's files atomically, in make-before-break order,
confirmed through its admin interface, restored to the last confirmed config on failure.

  plan.py         what changes, resource by resource, and the ordered steps
  confirm.py      has Envoy taken a step? (its admin's stats, /certs, /config_dump)
  transition.py   write, confirm, restore
  state.py        the history of accepted configs, the journal, the files xdsgen owns
  certs.py        certificates renewed in place
  lock.py         one apply per directory
  orchestrate.py  apply and rollback: the sequence
"""
