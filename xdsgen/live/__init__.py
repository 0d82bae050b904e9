"""Live apply: change a running Envoy's files atomically, in make-before-break order,
confirmed through its admin interface, restored to the last confirmed config on failure.

  plan.py         what changes, resource by resource, and the ordered steps
  confirm.py      has Envoy taken a step? (its admin's stats, /certs, /config_dump)
  transition.py   write, confirm, restore
  generations.py  directory mode (envoy.layout): the whole sets swapped in, in a safe order
  swap.py         directory mode: kubelet's `..data` swap
  layout.py       directory mode: moving between layouts, what Envoy must watch, what stays
  state.py        the history of accepted configs, the journal, the files xdsgen owns
  certs.py        certificates renewed in place
  lock.py         one apply per directory
  orchestrate.py  apply and rollback: the sequence
"""
