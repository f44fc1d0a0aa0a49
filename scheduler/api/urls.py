from django.urls import path

from scheduler.api import objects, views

urlpatterns = [
    path("gpu-classes/", views.GpuClassListApi.as_view(), name="gpu-classes"),
    path("nodes/", views.NodeListCreateApi.as_view(), name="nodes"),
    path("nodes/<int:node_id>/", views.NodeDetailApi.as_view(), name="node-detail"),
    path("jobs/", views.JobListCreateApi.as_view(), name="jobs"),
    path("jobs/<int:job_id>/", views.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:job_id>/cancel/", views.JobCancelApi.as_view(), name="job-cancel"),
    path("agent/heartbeat/", views.AgentHeartbeatApi.as_view(), name="agent-heartbeat"),
    path("agent/lease/", views.AgentLeaseApi.as_view(), name="agent-lease"),
    path("agent/assignments/<int:assignment_id>/usage/", views.AgentUsageApi.as_view(),
         name="agent-usage"),
    path("agent/assignments/<int:assignment_id>/complete/", views.AgentCompleteApi.as_view(),
         name="agent-complete"),
    path("agent/assignments/<int:assignment_id>/fail/", views.AgentFailApi.as_view(),
         name="agent-fail"),
    path("agent/assignments/<int:assignment_id>/logs/", objects.AgentLogChunkApi.as_view(),
         name="agent-logs"),
    path("agent/assignments/<int:assignment_id>/outputs/", objects.AgentOutputsApi.as_view(),
         name="agent-outputs"),
    path("agent/assignments/<int:assignment_id>/outputs/report/",
         objects.AgentOutputReportApi.as_view(), name="agent-output-report"),
    path("jobs/<int:job_id>/logs/", objects.JobLogsApi.as_view(), name="job-logs"),
    path("jobs/<int:job_id>/outputs/", objects.JobOutputsApi.as_view(), name="job-outputs"),
    path("objects/upload/<str:token>/", objects.ObjectUploadApi.as_view(), name="object-upload"),
    path("objects/download/<str:token>/", objects.ObjectDownloadApi.as_view(),
         name="object-download"),
]
