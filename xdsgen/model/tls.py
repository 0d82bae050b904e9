"""TLS on the https listeners: one filter chain per certificate (terminated, matched by
the SNI names of its vhosts) and one per passthrough entry (matched by its SNI names)."""

from __future__ import annotations

from xdsgen.model.ir import FilterChain, HttpManager, TcpProxy
from xdsgen.model.problems import Problems
from xdsgen.model.upstreams import check_reference
from xdsgen.model.values import domain_problem
from xdsgen.spec import PassthroughSpec, Spec, VhostSpec


def check_passthrough(spec: Spec, problems: Problems) -> None:
    for item in spec.tls_passthrough:
        check_reference(spec, item.upstream, (*item.path, "upstream"), problems)
        for d_index, domain in enumerate(item.sni):
            path = (*item.path, "sni", d_index)
            problem = domain_problem(domain)
            if problem:
                problems.error(path, problem)
            elif domain == "*":
                problems.error(path, 'passthrough needs real SNI names, not "*"')


def terminated_chains(listener: str, vhosts: list[VhostSpec]) -> tuple[FilterChain, ...]:
    by_cert: dict[str, set[str]] = {}  # a set: thousands of vhosts may share one certificate
    for vhost in vhosts:
        if vhost.tls is not None:
            by_cert.setdefault(vhost.tls, set()).update(d.lower() for d in vhost.domains)
    return tuple(
        FilterChain(
            name=f"{listener}_tls_{cert}",
            server_names=tuple(sorted(names)),
            secret=cert,
            http=HttpManager(stat_prefix=listener, route_config=listener),
        )
        for cert, names in sorted(by_cert.items())
    )


def passthrough_chains(listener: str, items: list[PassthroughSpec]) -> tuple[FilterChain, ...]:
    chains = []
    for item in items:
        server_names = tuple(sorted({s.lower() for s in item.sni}))
        chains.append(
            FilterChain(
                # Named by content: editing or removing one entry never renames (and so
                # never drains) another entry's chain.
                name=f"{listener}_pass_{server_names[0]}",
                server_names=server_names,
                tcp=TcpProxy(stat_prefix=f"{listener}_pass_{item.upstream}", cluster=item.upstream),
            )
        )
    return tuple(chains)


def check_sni_clashes(
    served: list[tuple[str, PassthroughSpec]],
    terminated: list[tuple[str, VhostSpec]],
    problems: Problems,
) -> None:
    """A name is either passed through or terminated, and passed through by one entry:
    per family. One clash is one error, naming its families."""
    owner: dict[tuple[str, str], VhostSpec] = {}
    for family, vhost in terminated:
        for domain in vhost.domains:
            owner.setdefault((family, domain.lower()), vhost)
    both: dict[tuple[int, int, int], set[str]] = {}
    twice: dict[tuple[int, int, int], set[str]] = {}
    first: dict[tuple[str, str], PassthroughSpec] = {}
    items: dict[int, PassthroughSpec] = {}
    for family, item in sorted(served, key=lambda pair: (pair[1].index, pair[0])):
        items[item.index] = item
        for d_index, sni in enumerate(item.sni):
            key = (family, sni.lower())
            if key in owner:
                both.setdefault((item.index, d_index, owner[key].index), set()).add(family)
            seen = first.setdefault(key, item)
            if seen.index != item.index:
                twice.setdefault((item.index, d_index, seen.index), set()).add(family)
    for (index, d_index, other), families in sorted(both.items()):
        problems.error(
            (*items[index].path, "sni", d_index),
            f"SNI {items[index].sni[d_index]!r} is both passed through and terminated by "
            f"http[{other}] on {' and '.join(sorted(families))}",
            "Envoy can do only one of them for a name",
        )
    for (index, d_index, other), families in sorted(twice.items()):
        problems.error(
            (*items[index].path, "sni", d_index),
            f"SNI {items[index].sni[d_index]!r} is already passed through by "
            f"tls_passthrough[{other}] on {' and '.join(sorted(families))}",
        )
