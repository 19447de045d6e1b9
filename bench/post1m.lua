-- wrk script: POST a 1 MiB body to every request (bench case "post1m").
wrk.method = "POST"
wrk.body = string.rep("a", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
