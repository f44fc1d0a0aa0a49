"""GET /api/v1/jobs/ in keyset pages (see tests/banking/api/test_cursor_pages.py)."""


def test_jobs_pages_walk_every_job_once_while_jobs_are_submitted(submit_job, buyer, online_node,
                                                                 api_client_for):
    online_node()
    jobs = [submit_job().pk for _ in range(7)]
    client = api_client_for(buyer)
    seen: list[int] = []
    url = "/api/v1/jobs/?page_size=3"
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        submit_job()
    assert seen == sorted(jobs, reverse=True)
