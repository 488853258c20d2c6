mod archive;
mod delete;
mod reliability;
