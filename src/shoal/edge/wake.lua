-- The edge's fast wake, inside HAProxy: a request to a route whose every instance sleeps on
-- this machine asks the node's agent to wake one (agent/waker.py: one line each way,
-- `wake <instance id>` answered `awake` once it serves), then HAProxy sends the request to
-- that instance itself (haproxy_config.py: the `woken` server). Nothing else is on the
-- request's path: no second proxy, no round trip through the control plane.
--
-- The route's backend finds its sleeper in `txn.asleep`, "<socket>,<instance id>,<address>,
-- <port>" (from the edge's map of sleepers). Once it is awake this sets `txn.woken_ip` and
-- `txn.woken_port`; when it could not be woken it sets nothing and the request goes where the
-- backend sends the rest: to the activator, which wakes the service through the control plane.
--
-- While HAProxy waits for the answer this request yields: the others go on.

core.register_action("shoal_wake", { "http-req" }, function(txn, wait)
    local asleep = txn:get_var("txn.asleep")
    local socket, id, ip, port = string.match(asleep or "", "^([^,]+),([^,]+),([^,]+),(%d+)$")
    if not socket then
        return
    end
    local agent = core.tcp()
    agent:settimeout(tonumber(wait))
    if agent:connect("unix@" .. socket) and agent:send("wake " .. id .. "\n") then
        if agent:receive("*l") == "awake" then
            txn:set_var("txn.woken_ip", ip)
            txn:set_var("txn.woken_port", port)
        end
    end
    agent:close()
end, 1)
