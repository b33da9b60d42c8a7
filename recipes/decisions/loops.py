"""The loops of a graph: the alias chains that would never reach a mailbox."""


def find_loops(graph):
    """The cycles of ``graph`` (node -> [nodes]), each as a list of nodes
    ``[a, b, ..., a]``: one per strongly connected component that loops
    (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, loops = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        return (node, iter(graph[node]))

    for root in graph:
        if root in index:
            continue
        work = [visit(root)]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    work.append(visit(child))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = _pop_component(stack, on_stack, node)
                    if len(component) > 1 or node in graph[node]:
                        loops.append(cycle_through(graph, component))
    return loops


def _pop_component(stack, on_stack, root):
    component = set()
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == root:
            return component


def cycle_through(graph, component):
    """One cycle within ``component`` (a set of nodes): the walk from its
    smallest node, each step to the smallest next node not walked yet,
    until it closes (not always through that first node)."""
    start = min(component)
    path, seen, node = [start], {start}, start
    while True:
        following = sorted(n for n in graph[node] if n in component)
        if start in following:
            return path + [start]
        node = next((n for n in following if n not in seen), following[0])
        if node in seen:
            return path[path.index(node):] + [node]
        path.append(node)
        seen.add(node)
